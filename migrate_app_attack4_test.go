package eventfold_test

import (
	"context"
	"database/sql"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack4MigrateAppRefusesEventfoldsTableQualified: MigrateApp refuses
// eventfold's own version table by name (strings.EqualFold with
// MigrationTable), but the same table named with its schema
// (public.eventfold_goose_version, <database>.eventfold_goose_version,
// main.eventfold_goose_version) goes through to goose. The service's
// migrations are then read against eventfold's version rows: its 00001 is
// taken as applied (eventfold's 00001 is), nothing of it is created, and
// its 00100 is applied and recorded there: eventfold's schema version
// becomes 100, so every eventfold binary then sees a newer schema.
//
// Finding (attack4), fixed: a name whose table part is eventfold's, with
// or without a schema, is refused.
func TestAttack4MigrateAppRefusesEventfoldsTableQualified(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		dsn := testdb.DSN(t, d) // eventfold's schema installed
		c, _, err := sqldriver.Connector(dsn)
		require.NoError(t, err)
		db := sql.OpenDB(c)
		defer db.Close()
		var schema string
		switch d {
		case eventfold.Postgres:
			require.NoError(t, db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema))
		case eventfold.MySQL:
			require.NoError(t, db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&schema))
		case eventfold.SQLite:
			schema = "main"
		}
		before, err := eventfold.SchemaVersion(ctx, d, db)
		require.NoError(t, err)
		fsys := fstest.MapFS{
			"00001_s.sql": {Data: []byte("-- +goose Up\nCREATE TABLE app_s (id INT PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE app_s;\n")},
			"00100_t.sql": {Data: []byte("-- +goose Up\nCREATE TABLE app_t (id INT PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE app_t;\n")},
		}
		table := schema + "." + eventfold.MigrationTable
		res, err := eventfold.MigrateApp(ctx, d, db, fsys, table)
		after, verr := eventfold.SchemaVersion(ctx, d, db)
		require.NoError(t, verr)
		assert.Equal(t, before, after, "eventfold's schema version after the service's migrations")
		var exists bool
		_, qerr := db.ExecContext(ctx, `SELECT COUNT(*) FROM app_s`)
		exists = qerr == nil
		t.Logf("MigrateApp(%q): %d applied, err %v; app_s created: %v", table, len(res), err, exists)
		assert.ErrorIs(t, err, eventfold.ErrInvalidInput, "MigrateApp(%q) ran against eventfold's own version table (applied %d, app_s created: %v)", table, len(res), exists)
	})
}

// TestAttack4MigrateAppRefusesBadTableNames: the version table's name goes
// into goose's SQL as written (not quoted, not checked). A name with a
// space, a quote, a backtick or a semicolon is met by the server's syntax
// error after about 3 s (goose retries its initialisation), not by a clear
// error naming the bad input; on PostgreSQL the name's text runs as SQL:
// "v (id INT); DROP TABLE victim; CREATE TABLE w" as one statement was
// accepted by the server (goose failed only at its next one, "insert
// version 0"; its transaction rolled back and the table victim survived). Finding (attack4), fixed: names that are not plain
// [A-Za-z_][A-Za-z0-9_]* (optionally schema-qualified) are invalid input.
func TestAttack4MigrateAppRefusesBadTableNames(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		dsn := testdb.DSN(t, d)
		c, _, err := sqldriver.Connector(dsn)
		require.NoError(t, err)
		db := sql.OpenDB(c)
		defer db.Close()
		fsys := fstest.MapFS{
			"00001_s.sql": {Data: []byte("-- +goose Up\nCREATE TABLE app_s (id INT PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE app_s;\n")},
		}
		for _, table := range []string{"App Version", `a"b`, "a`b", "a'b", "v (id INT); DROP TABLE victim; CREATE TABLE w"} {
			_, err := eventfold.MigrateApp(ctx, d, db, fsys, table)
			assert.ErrorIs(t, err, eventfold.ErrInvalidInput, "MigrateApp(%q)", table)
		}
	})
}
