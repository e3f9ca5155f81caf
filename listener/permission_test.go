package listener_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestPermissionDeniedIsNotRetried: an account that may not read
// eventfold's tables got a WARN "reading the log failed; retrying" from
// Tail, and one "retrying" from a Subscription, every few seconds for
// ever, and neither returned. Permission errors (PostgreSQL 42501, MySQL
// 1142 and its kin) are now permanent: Tail and Run return them at once.
//
// Retrying was not kept for "a DBA may grant it later": the grant comes
// after someone reads the error, which a process that keeps running and
// logs a warning hides; a supervisor restarts a process that exited, and
// a service that wants to wait for the grant can loop on the error itself.
func TestPermissionDeniedIsNotRetried(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		if d == eventfold.SQLite {
			t.Skip("SQLite has no accounts")
		}
		t.Parallel()
		dsn := testdb.DSN(t, d)
		ro := unprivilegedAccount(t, d, dsn)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a guard against a hang, not a measure
		defer cancel()
		drv, err := sqldriver.Open(ctx, ro)
		require.NoError(t, err)
		defer drv.Close()
		store := eventfold.New(drv, nil)
		opts := &listener.Options{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		if os.Getenv("WM_DEBUG") != "" {
			opts.Logger = slog.Default()
		}

		err = listener.Tail(ctx, store, 0, opts, func(context.Context, listener.Batch) error { return nil })
		require.Error(t, err, "Tail returned nil: it retried until its context ended")
		require.NoError(t, ctx.Err(), "Tail retried until its context ended")
		t.Log("Tail: ", err)
		require.Contains(t, err.Error(), "denied")

		sub, err := listener.New(store, "perm", func(context.Context, eventfold.Event) error { return nil }, opts)
		require.NoError(t, err)
		err = sub.Run(ctx)
		require.Error(t, err, "Run returned nil: it retried until its context ended")
		require.NoError(t, ctx.Err(), "Run retried until its context ended")
		t.Log("Run: ", err)
		require.Contains(t, err.Error(), "denied")
	})
}

// unprivilegedAccount creates an account that may connect to dsn's
// database but read none of eventfold's tables (MySQL: SELECT on one
// table of its own, so that it may use the database), dropped when the
// test ends, and returns its DSN.
func unprivilegedAccount(t *testing.T, d eventfold.Dialect, dsn string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	name := fmt.Sprintf("eftest_noperm_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	exec := func(q string) {
		t.Helper()
		_, err := admin.DB().ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	switch d {
	case eventfold.Postgres:
		exec(`CREATE ROLE ` + name + ` LOGIN`)
		t.Cleanup(func() {
			_, _ = admin.DB().Exec(`DROP OWNED BY ` + name)
			_, _ = admin.DB().Exec(`DROP ROLE ` + name)
		})
	case eventfold.MySQL:
		exec(`CREATE TABLE ` + name + `_own (id INT)`)
		exec(`CREATE USER '` + name + `'@'%'`)
		t.Cleanup(func() { _, _ = admin.DB().Exec(`DROP USER '` + name + `'@'%'`) })
		exec(`GRANT SELECT ON ` + name + `_own TO '` + name + `'@'%'`)
	}
	u.User = url.User(name)
	return u.String()
}
