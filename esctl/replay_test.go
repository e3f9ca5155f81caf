package esctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

type sql_Tx = sql.Tx

func TestReplayBareExplainsEmbedding(t *testing.T) {
	r := run(t, Options{}, "sqlite://"+t.TempDir()+"/x.db", "replay")
	if r.code != ExitError || !strings.Contains(r.stderr, "esctl.Main(") || !strings.Contains(r.stderr, "Replayer") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestReplayRebuildsReadModel(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 5)
		var resets int
		var seen []int64
		rep := ReplayFuncs{
			ResetFunc: func(ctx context.Context, tx *sql.Tx) error { resets++; seen = nil; return nil },
			ApplyFunc: func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
				seen = append(seen, ev.GlobalPosition)
				return nil
			},
		}
		r := run(t, Options{Replayer: rep}, dsn, "replay")
		if r.code != 0 || resets != 1 || len(seen) != len(evs) || seen[4] != evs[4].GlobalPosition {
			t.Fatalf("exit %d (%s), resets %d, seen %v", r.code, r.stderr, resets, seen)
		}
		seen = nil
		r = run(t, Options{Replayer: rep}, dsn, "replay", "--from", jsonInt(evs[3].GlobalPosition), "--no-reset", "--commit-every", "1")
		if r.code != 0 || resets != 1 || len(seen) != 2 {
			t.Fatalf("exit %d (%s), resets %d, seen %v", r.code, r.stderr, resets, seen)
		}
	})
}

// TestReplayCommitEveryFailure: --commit-every N commits every N events
// (not every page), and a failure names the position to resume from: the
// first event of the failed transaction, whose work was rolled back.
func TestReplayCommitEveryFailure(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	evs := archiveFixture(t, dsn, 5)
	var txs []*sql.Tx
	rep := ReplayFuncs{ApplyFunc: func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		if len(txs) == 0 || txs[len(txs)-1] != tx {
			txs = append(txs, tx)
		}
		if ev.GlobalPosition == evs[3].GlobalPosition {
			return errors.New("reducer broke")
		}
		return nil
	}}
	r := run(t, Options{Replayer: rep}, dsn, "replay", "--commit-every", "2")
	if r.code != ExitError || !strings.Contains(r.stderr, "reducer broke") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if len(txs) != 2 {
		t.Fatalf("events 1-4 ran in %d transactions, want 2 (--commit-every 2)", len(txs))
	}
	want := fmt.Sprintf("applied and committed before it: 2 events, next position %d)", evs[2].GlobalPosition)
	if !strings.Contains(r.stderr, want) {
		t.Fatalf("stderr %q, want it to say %q", r.stderr, want)
	}
}

func TestDemoHonoursGlobalDSN(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // the demo's scratch folder: no litter in /tmp
	var got string
	demo := func(ctx context.Context, w io.Writer, dsn string) error { got = dsn; return nil }
	want := "sqlite://" + t.TempDir() + "/mine.db"
	if r := run(t, Options{Demo: demo}, want, "demo"); r.code != 0 || got != want {
		t.Fatalf("esctl --dsn X demo: exit %d, demo ran on %q, want %q", r.code, got, want)
	}
	// EVENTFOLD_DSN may name a real database: the demo does not use it.
	env := func(k string) string {
		if k == "EVENTFOLD_DSN" {
			return "postgres://prod/db"
		}
		return ""
	}
	if r := run(t, Options{Demo: demo, Getenv: env}, "", "demo"); r.code != 0 || !strings.Contains(got, "eventfold-demo-") {
		t.Fatalf("demo with EVENTFOLD_DSN: exit %d, ran on %q", r.code, got)
	}
}

func TestDemoDefaultsToFreshSQLite(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var got string
	demo := func(ctx context.Context, w io.Writer, dsn string) error { got = dsn; return nil }
	r := run(t, Options{Demo: demo}, "", "demo")
	if r.code != 0 || !strings.HasPrefix(got, "sqlite://") || !strings.Contains(got, "eventfold-demo-") {
		t.Fatalf("exit %d, dsn %q", r.code, got)
	}
	r = run(t, Options{}, "", "demo")
	if r.code != ExitError || !strings.Contains(r.stderr, "not built into") {
		t.Fatalf("bare demo: exit %d, %q", r.code, r.stderr)
	}
}
