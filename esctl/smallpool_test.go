package esctl

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

func withMaxOpen(dsn string, n int) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%smax_open_conns=%d", dsn, sep, n)
}

// TestCommandsOnOneConnection: every esctl command that works on a
// database (relay: TestRelayNATS; bench sizes its own pools) works with max_open_conns=1 (run's 2-minute context turns a
// hang into a failure).
func TestCommandsOnOneConnection(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := withMaxOpen(testdb.EmptyDSN(t, d), 1)
		mustRun(t, dsn, "migrate", "up")
		for i := range 6 {
			mustRun(t, dsn, "append", "--stream", fmt.Sprintf("s-%d", i%2), "--type", "T", "--data", `{}`)
		}
		require.Contains(t, mustRun(t, dsn, "read", "--stream", "s-1"), `"stream_id":"s-1"`)
		mustRun(t, dsn, "read", "--all")
		mustRun(t, dsn, "stats")
		mustRun(t, dsn, "doctor")
		mustRun(t, dsn, "doctor", "--repair")
		mustRun(t, dsn, "migrate", "status")
		mustRun(t, dsn, "subscriptions", "list")
		var applied int
		rep := ReplayFuncs{
			ResetFunc: func(context.Context, *sql.Tx) error { applied = 0; return nil },
			ApplyFunc: func(context.Context, *sql.Tx, eventfold.Event) error { applied++; return nil },
		}
		for _, args := range [][]string{{"replay"}, {"replay", "--commit-every", "1"}} {
			r := run(t, Options{Replayer: rep}, dsn, args...)
			require.Equal(t, 0, r.code, "%v: %s", args, r.stderr)
			if d != eventfold.Postgres { // PostgreSQL's reads stop at the horizon, which other databases' transactions hold back
				require.Equal(t, 6, applied, "%v", args)
			}
		}
		out := mustRun(t, dsn, "tail", "--from", "0", "--limit", "2")
		require.Equal(t, 2, strings.Count(out, `"stream_id"`), out)
		archive := t.TempDir() + "/a.jsonl.gz"
		mustRun(t, dsn, "archive", "--before", "3", "--to", archive)
		if d != eventfold.Postgres { // its positions are far above 3: nothing was archived
			mustRun(t, dsn, "restore", "--from", archive)
		}
		mustRun(t, dsn, "migrate", "down", "--to", "0", "--force")
	})
}

// TestTailWakesOnNotifyWithACap: esctl tail on PostgreSQL gave its LISTEN
// connection the DSN as written, max_open_conns included, which PostgreSQL
// refused ("unrecognized configuration parameter"), reconnecting for ever:
// tail then woke only when it polled. The LISTEN connects (seen in
// pg_stat_activity) and an append wakes a tail that polls once an hour.
func TestTailWakesOnNotifyWithACap(t *testing.T) {
	ctx := context.Background()
	base := testdb.DSN(t, eventfold.Postgres)
	dsn := withMaxOpen(base, 1)
	admin, err := sqldriver.Open(ctx, base)
	require.NoError(t, err)
	defer admin.Close()
	done := make(chan result, 1)
	go func() { done <- run(t, Options{}, dsn, "tail", "--from", "0", "--poll", "1h", "--limit", "1") }()
	for {
		var listening int
		require.NoError(t, admin.DB().QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'listen %'`).Scan(&listening))
		if listening > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("tail ended: %+v", r)
		case <-time.After(20 * time.Millisecond):
		}
	}
	mustRun(t, dsn, "append", "--stream", "woken-1", "--type", "Woke", "--data", `{"n":1}`)
	r := <-done
	require.Equal(t, 0, r.code, "tail: stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.Contains(t, r.stdout, `"stream_id":"woken-1"`, "tail: stderr: %s", r.stderr)
}
