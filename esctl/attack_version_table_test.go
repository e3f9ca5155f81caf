package esctl

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttackVersionTableOutOfSight: eventfold's tables hold events but its
// migration table is out of sight: renamed or dropped by someone, or (on
// PostgreSQL) in schema public while the connection's search_path is
// another schema (a DBA migrated with one search_path, the service runs
// with another). esctl said "the eventfold schema is not installed ...
// migrate up installs it" (and migrate status listed every migration as
// pending); following the advice ran 00001 again over the existing tables
// ("relation streams already exists", and on PostgreSQL a stray version
// table created in the other schema); Store.Migrate at a service's start
// failed the same way. Now both say the version table is not found and
// where to look, and migrate up writes nothing.
func TestAttackVersionTableOutOfSight(t *testing.T) {
	check := func(t *testing.T, dsn string, hidden func(*testing.T) int) {
		t.Helper()
		ctx := context.Background()
		for _, args := range [][]string{{"stats"}, {"migrate", "up"}, {"migrate", "status"}, {"read", "--all"}} {
			r := run(t, Options{}, dsn, args...)
			require.NotEqual(t, 0, r.code, "%v: %s", args, r.stdout)
			require.NotContains(t, r.stderr, "not installed", "%v", args)
			require.NotContains(t, r.stderr, "already exists", "%v: migrate up ran a migration", args)
			require.Contains(t, r.stderr, eventfold.MigrationTable+" is not found", "%v: %s", args, r.stderr)
		}
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		store := eventfold.New(drv, nil)
		err = store.Migrate(ctx)
		require.ErrorIs(t, err, eventfold.ErrVersionTableMissing)
		require.Equal(t, 0, hidden(t), "nothing created a second version table")
		stream, err := store.ReadStream(ctx, "s-1", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Len(t, stream, 1, "the stream is untouched")
		// PostgreSQL: other transactions of the cluster (tests running in
		// parallel) can hold the read horizon back; wait for it.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err = store.WaitHead(wctx, stream[0].GlobalPosition)
		require.NoError(t, err)
		evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
		require.NoError(t, err)
		require.Len(t, evs, 1, "the log is untouched")
	}

	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.DSN(t, d)
		mustRun(t, dsn, "append", "--stream", "s-1", "--type", "T", "--data", "{}")
		drv, err := sqldriver.Open(context.Background(), dsn)
		require.NoError(t, err)
		defer drv.Close()
		db := drv.DB()
		_, err = db.Exec(`ALTER TABLE ` + eventfold.MigrationTable + ` RENAME TO eventfold_goose_version_moved`)
		require.NoError(t, err)
		check(t, dsn, func(t *testing.T) int {
			// A new version table would be named MigrationTable again.
			_, err := db.Exec(`SELECT 1 FROM ` + eventfold.MigrationTable)
			if err == nil {
				return 1
			}
			return 0
		})
	})

	t.Run("postgres search_path", func(t *testing.T) {
		t.Parallel()
		dsn := testdb.DSN(t, eventfold.Postgres)
		mustRun(t, dsn, "append", "--stream", "s-1", "--type", "T", "--data", "{}")
		drv, err := sqldriver.Open(context.Background(), dsn)
		require.NoError(t, err)
		defer drv.Close()
		db := drv.DB()
		_, err = db.Exec(`CREATE SCHEMA other`)
		require.NoError(t, err)
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		check(t, dsn+sep+"search_path=other", func(t *testing.T) int {
			var n int
			require.NoError(t, db.QueryRow(`SELECT count(*) FROM pg_tables WHERE tablename = $1`, eventfold.MigrationTable).Scan(&n))
			return n - 1 // the original, in public
		})
	})
}
