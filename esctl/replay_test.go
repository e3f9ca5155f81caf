package esctl

import (
	"context"
	"database/sql"
	"io"
	"strings"
	"testing"

	"github.com/eventfold/eventfold"
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

func TestDemoDefaultsToFreshSQLite(t *testing.T) {
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
