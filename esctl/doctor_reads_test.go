package esctl

import (
	"context"
	"database/sql"
	"net/url"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestDoctorReadsTheVersionTableOnce: esctl doctor read eventfold's
// version table several times per run (opening the store, the newer-schema
// check, the positions check). It reads it once. Counted by PostgreSQL's
// own statistics: the scans of the version table (sequential and index)
// while doctor ran, read after doctor's connections have ended (a backend
// flushes its statistics when it exits).
func TestDoctorReadsTheVersionTableOnce(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.Scheme = "postgres"
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	scans := func() int64 {
		t.Helper()
		// Wait until no other session of this database is left, then until
		// the counter stops moving (the exiting backends' last flushes).
		deadline := time.Now().Add(30 * time.Second)
		for {
			var others int
			require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&others))
			if others == 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "%d sessions of the test database did not end", others)
			time.Sleep(20 * time.Millisecond)
		}
		read := func() int64 {
			_, err := db.ExecContext(ctx, `SELECT pg_stat_clear_snapshot()`)
			require.NoError(t, err)
			var n int64
			require.NoError(t, db.QueryRowContext(ctx, `SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables WHERE relname = $1`, eventfold.MigrationTable).Scan(&n))
			return n
		}
		last := read()
		for {
			time.Sleep(300 * time.Millisecond)
			n := read()
			if n == last {
				return n
			}
			last = n
		}
	}
	before := scans()
	mustRun(t, dsn, "doctor")
	after := scans()
	require.EqualValues(t, 1, after-before, "scans of %s during one esctl doctor", eventfold.MigrationTable)
}
