package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/examples/bank/demo"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestReplayRebuildsReadModels runs the demo, wipes the read models behind
// the orchestrator's back, and checks that `bankctl replay` rebuilds them
// exactly from the log.
func TestReplayRebuildsReadModels(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		dsn := testdb.EmptyDSN(t, d)
		if err := demo.Run(ctx, io.Discard, dsn); err != nil {
			t.Fatalf("demo: %v", err)
		}
		drv, err := sqldriver.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer drv.Close()
		store := eventfold.New(drv, nil)
		app, err := bank.New(store, nil)
		if err != nil {
			t.Fatal(err)
		}
		snapshot := func() string {
			accts, err := app.Accounts(ctx)
			if err != nil {
				t.Fatal(err)
			}
			out := fmt.Sprint(accts)
			for _, a := range accts {
				lines, err := app.Statement(ctx, a.AccountID)
				if err != nil {
					t.Fatal(err)
				}
				out += fmt.Sprint(lines)
			}
			return out
		}
		before := snapshot()
		if _, err := drv.DB().ExecContext(ctx, "DELETE FROM bank_ledger"); err != nil {
			t.Fatal(err)
		}
		if _, err := drv.DB().ExecContext(ctx, "UPDATE bank_accounts SET balance = 0"); err != nil {
			t.Fatal(err)
		}
		if snapshot() == before {
			t.Fatal("wiping the read models changed nothing: the test proves nothing")
		}
		last, err := store.LastPosition(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// PostgreSQL: wait out other transactions holding the horizon back.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if h, err := store.WaitHead(wctx, last); err != nil {
			t.Fatalf("the log is complete only up to %d, want %d: %v", h, last, err)
		}
		var stdout, stderr bytes.Buffer
		code := esctl.Main(ctx, []string{"--dsn", dsn, "replay"}, &stdout, &stderr, esctl.Options{Name: "bankctl", ReplayerFor: Replayer})
		if code != 0 {
			t.Fatalf("bankctl replay: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		if after := snapshot(); after != before {
			t.Fatalf("replay rebuilt\n%s\nwant\n%s", after, before)
		}
	})
}
