package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
		require.NoError(t, demo.Run(ctx, io.Discard, dsn), "demo")
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		store := eventfold.New(drv, nil)
		app, err := bank.New(store, nil)
		require.NoError(t, err)
		snapshot := func() string {
			accts, err := app.Accounts(ctx)
			require.NoError(t, err)
			out := fmt.Sprint(accts)
			for _, a := range accts {
				lines, err := app.Statement(ctx, a.AccountID)
				require.NoError(t, err)
				out += fmt.Sprint(lines)
			}
			return out
		}
		before := snapshot()
		_, err = drv.DB().ExecContext(ctx, "DELETE FROM bank_ledger")
		require.NoError(t, err)
		_, err = drv.DB().ExecContext(ctx, "UPDATE bank_accounts SET balance = 0")
		require.NoError(t, err)
		require.NotEqual(t, before, snapshot(), "wiping the read models changed nothing: the test proves nothing")
		last, err := store.LastPosition(ctx)
		require.NoError(t, err)
		// PostgreSQL: wait out other transactions holding the horizon back.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		h, err := store.WaitHead(wctx, last)
		require.NoError(t, err, "the log is complete only up to %d, want %d", h, last)
		var stdout, stderr bytes.Buffer
		code := esctl.Main(ctx, []string{"--dsn", dsn, "replay"}, &stdout, &stderr, esctl.Options{Name: "bankctl", ReplayerFor: Replayer})
		require.Zero(t, code, "bankctl replay:\n%s%s", stdout.String(), stderr.String())
		require.Equal(t, before, snapshot(), "replay rebuilds the read models exactly")
	})
}
