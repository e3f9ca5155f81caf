package eventfold_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// slowStatement takes about half a second on each dialect.
var slowStatement = map[eventfold.Dialect]string{
	eventfold.Postgres: "SELECT pg_sleep(0.5);",
	eventfold.MySQL:    "DO SLEEP(0.5);",
	eventfold.SQLite:   "CREATE TABLE app_slow AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1500000) SELECT count(*) AS n FROM c;",
}

// TestMigrateAppTwoAtOnce: two replicas of a service start together and
// both apply the service's own migrations (its read-model tables). With a
// bare goose provider, as esctl's AppMigrations and the bank example used,
// nothing kept them apart: both saw version 0 and ran 00001, and one
// failed ("already exists" / a duplicate version row). MigrateApp takes
// eventfold's migration lock: the second waits, finds nothing pending, and
// every migration runs once.
func TestMigrateAppTwoAtOnce(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		ctx := context.Background()
		dsn := testdb.EmptyDSN(t, d)
		// The version table exists already (an earlier release applied
		// 00001); the new release brings a slow 00002 and 00003.
		fsys := fstest.MapFS{
			"00001_s.sql": {Data: []byte("-- +goose Up\nCREATE TABLE app_s (id INT PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE app_s;\n")},
		}
		dbs := make([]*sql.DB, 2)
		for i := range dbs {
			c, _, err := sqldriver.Connector(dsn)
			require.NoError(t, err)
			dbs[i] = sql.OpenDB(c)
			defer dbs[i].Close()
		}
		_, err := eventfold.MigrateApp(ctx, d, dbs[0], fsys, "app_goose_version")
		require.NoError(t, err)
		fsys["00002_t.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE app_t (id INT PRIMARY KEY);\n" + slowStatement[d] + "\n\n-- +goose Down\nDROP TABLE app_t;\n")}
		fsys["00003_u.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE app_u (id INT PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE app_u;\n")}
		var wg sync.WaitGroup
		results := make([][]*goose.MigrationResult, 2)
		errs := make([]error, 2)
		for i := range dbs {
			wg.Go(func() { results[i], errs[i] = eventfold.MigrateApp(ctx, d, dbs[i], fsys, "app_goose_version") })
		}
		wg.Wait()
		require.NoError(t, errors.Join(errs...))
		require.Len(t, append(results[0], results[1]...), 2, "each migration ran once: %v / %v", results[0], results[1])
		var n int
		require.NoError(t, dbs[0].QueryRowContext(ctx, `SELECT COUNT(*) FROM app_goose_version WHERE version_id > 0`).Scan(&n))
		require.Equal(t, 3, n)
	})
}

func TestMigrateAppRefusesEventfoldsTable(t *testing.T) {
	_, err := eventfold.MigrateApp(context.Background(), eventfold.SQLite, nil, fstest.MapFS{}, eventfold.MigrationTable)
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.ErrorContains(t, err, "version table of their own")
	_, err = eventfold.MigrateApp(context.Background(), eventfold.SQLite, nil, fstest.MapFS{}, "")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
}
