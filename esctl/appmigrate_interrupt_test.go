package esctl

import (
	"bytes"
	"context"
	"database/sql"
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAppMigrationInterruptedMySQL: a service's own migrations (esctl
// migrate up after eventfold's) cancelled midway on MariaDB, whose DDL
// commits statement by statement. Before, the cancellation stopped the
// migration between its statements: its table created, its column not,
// its version not recorded, and every later migrate up failed with
// "Table 'app_a' already exists". Like eventfold's own migrations, a
// started one now finishes, the next does not start, and migrate up goes
// on from there.
func TestAppMigrationInterruptedMySQL(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	conn, d, err := sqldriver.Connector(dsn)
	require.NoError(t, err)
	ictx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	c := &testdb.CancelOnStatement{Connector: conn, Match: "ADD COLUMN note", Cancel: interrupt}
	db := sql.OpenDB(c)
	defer db.Close()
	fsys := fstest.MapFS{
		"00001_a.sql": {Data: []byte("-- +goose Up\nCREATE TABLE app_a (id INT PRIMARY KEY);\nALTER TABLE app_a ADD COLUMN note TEXT;\n\n-- +goose Down\nDROP TABLE app_a;\n")},
		"00002_b.sql": {Data: []byte("-- +goose Up\nCREATE TABLE app_b (id INT PRIMARY KEY);\n\n-- +goose Down\nDROP TABLE app_b;\n")},
	}
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, opts: &Options{Migrations: &AppMigrations{
		Name: "app", Table: "app_goose_version",
		FS: func(eventfold.Dialect) (fs.FS, error) { return fsys, nil },
	}}}
	err = appMigrateUp(ictx, env, d, db)
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, c.Seen(), "the interrupt came during 00001")
	require.Contains(t, err.Error(), "stopped before migration 2, at version 1")
	var col int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'app_a' AND column_name = 'note'`).Scan(&col))
	require.Equal(t, 1, col, "00001 ran whole")
	var tables int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'app_b'`).Scan(&tables))
	require.Equal(t, 0, tables, "00002 did not start")

	out.Reset()
	require.NoError(t, appMigrateUp(ctx, env, d, db), "migrate up goes on: %s", out.String())
	require.Contains(t, out.String(), "00002_b.sql")
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'app_b'`).Scan(&tables))
	require.Equal(t, 1, tables)
}
