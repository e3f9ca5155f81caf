package esctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

type sql_Tx = sql.Tx

func TestReplayBareExplainsEmbedding(t *testing.T) {
	r := run(t, Options{}, "sqlite://"+t.TempDir()+"/x.db", "replay")
	require.Equal(t, ExitError, r.code, "stderr %q", r.stderr)
	require.Contains(t, r.stderr, "esctl.Main(")
	require.Contains(t, r.stderr, "Replayer")
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
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, 1, resets)
		require.Len(t, seen, len(evs))
		require.Equal(t, evs[4].GlobalPosition, seen[4])
		seen = nil
		r = run(t, Options{Replayer: rep}, dsn, "replay", "--from", jsonInt(evs[3].GlobalPosition), "--no-reset", "--commit-every", "1")
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, 1, resets)
		require.Len(t, seen, 2)
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
	require.Equal(t, ExitError, r.code, "stderr %q", r.stderr)
	require.Contains(t, r.stderr, "reducer broke")
	require.Len(t, txs, 2, "events 1-4 ran in %d transactions, want 2 (--commit-every 2)", len(txs))
	want := fmt.Sprintf("applied and committed before it: 2 events, next position %d)", evs[2].GlobalPosition)
	require.Contains(t, r.stderr, want)
}

func TestDemoHonoursGlobalDSN(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir()) // the demo's scratch folder: no litter in /tmp
	var got string
	demo := func(ctx context.Context, w io.Writer, dsn string) error { got = dsn; return nil }
	want := "sqlite://" + t.TempDir() + "/mine.db"
	r := run(t, Options{Demo: demo}, want, "demo")
	require.Equal(t, 0, r.code, "esctl --dsn X demo: %s", r.stderr)
	require.Equal(t, want, got, "esctl --dsn X demo ran on another database")
	// EVENTFOLD_DSN may name a real database: the demo does not use it.
	env := func(k string) string {
		if k == "EVENTFOLD_DSN" {
			return "postgres://prod/db"
		}
		return ""
	}
	r = run(t, Options{Demo: demo, Getenv: env}, "", "demo")
	require.Equal(t, 0, r.code, "demo with EVENTFOLD_DSN: %s", r.stderr)
	require.Contains(t, got, "eventfold-demo-", "demo with EVENTFOLD_DSN")
}

func TestDemoDefaultsToFreshSQLite(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	var got string
	demo := func(ctx context.Context, w io.Writer, dsn string) error { got = dsn; return nil }
	r := run(t, Options{Demo: demo}, "", "demo")
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(got, "sqlite://"), "dsn %q", got)
	require.Contains(t, got, "eventfold-demo-")
	r = run(t, Options{}, "", "demo")
	require.Equal(t, ExitError, r.code, "bare demo: %q", r.stderr)
	require.Contains(t, r.stderr, "not built into")
}
