package esctl

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// everyCommand is every esctl command that opens the database, with
// arguments that are valid apart from the missing schema.
var everyCommand = [][]string{
	{"read", "--all"},
	{"read", "--stream", "account-1"},
	{"tail", "--from", "0", "--limit", "1"},
	{"stats"},
	{"subscriptions", "list"},
	{"subscriptions", "reset", "x", "--to", "0"},
	{"append", "--stream", "a-1", "--type", "T", "--data", "{}"},
	{"archive", "--before", "10", "--to", "ARCHIVE"},
	{"restore", "--from", "ARCHIVE"},
	{"replay"},
	{"migrate", "status"},
	{"migrate", "down"},
}

// TestMissingSQLiteFileNeverCreated: a typo in a sqlite:// path must not
// silently create an empty database; every command says what to run
// instead, and only `migrate up` creates the file.
func TestMissingSQLiteFileNeverCreated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "typo.db")
	dsn := "sqlite://" + path
	for _, args := range everyCommand {
		args = append([]string(nil), args...)
		for i, a := range args {
			args[i] = strings.ReplaceAll(a, "ARCHIVE", filepath.Join(dir, "old.jsonl.gz"))
		}
		r := run(t, Options{}, dsn, args...)
		require.NotEqual(t, 0, r.code, "%v", args)
		if args[0] != "restore" && args[0] != "replay" { // they check their own input first
			require.Contains(t, r.stderr, "migrate up", "%v: %s", args, r.stderr)
			require.Contains(t, r.stderr, "no SQLite database at "+path, "%v", args)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %s", args, r.stderr)
		}
		_, err := os.Stat(path)
		require.ErrorIs(t, err, os.ErrNotExist, "%v created %s", args, path)
	}
	mustRun(t, dsn, "migrate", "up")
	require.FileExists(t, path)
}

// TestSchemaNotInstalled: on an existing database without eventfold's
// schema, every command and the library say so and how to install it,
// instead of a driver's "no such table".
func TestSchemaNotInstalled(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.EmptyDSN(t, d)
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, dsn) // creates the SQLite file: an empty database
		require.NoError(t, err)
		store := eventfold.New(drv, nil)
		defer store.Close()

		_, err = store.ReadAll(ctx, eventfold.ReadAllOptions{})
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		require.Contains(t, err.Error(), "migrate up")
		_, err = store.ReadStream(ctx, "account-1", eventfold.ReadStreamOptions{})
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		_, err = store.Append(ctx, "account-1", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		_, err = store.Head(ctx)
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		v, err := store.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Zero(t, v)

		for _, args := range everyCommand {
			if args[0] == "migrate" || args[0] == "restore" || args[0] == "archive" || args[0] == "replay" {
				continue
			}
			r := run(t, Options{}, dsn, args...)
			require.Equal(t, ExitError, r.code, "%v: %s", args, r.stderr)
			require.Contains(t, r.stderr, "the eventfold schema is not installed in", "%v", args)
			require.Contains(t, r.stderr, "migrate up` installs it", "%v", args)
			require.NotContains(t, r.stderr, "no such table")
		}
		v, err = store.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Zero(t, v, "a read-only command installed something")
		mustRun(t, dsn, "migrate", "up")
		mustRun(t, dsn, "read", "--all")
	})
}

// TestSQLiteFileURIPrefix: sqlite://file:x.db (SQLite's own URI form)
// opens x.db, not a file literally named "file:x.db".
func TestSQLiteFileURIPrefix(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	mustRun(t, "sqlite://file:x.db?_pragma=busy_timeout(5000)", "migrate", "up")
	require.FileExists(t, filepath.Join(dir, "x.db"))
	require.NoFileExists(t, filepath.Join(dir, "file:x.db"))
}

// TestMySQLWithoutDatabase: a mysql:// URL without a database is refused
// with the form to write, not the server's "No database selected".
func TestMySQLWithoutDatabase(t *testing.T) {
	for _, dsn := range []string{"mysql://root@127.0.0.1:3306", "mysql://root@127.0.0.1:3306/"} {
		r := run(t, Options{}, dsn, "read", "--all")
		require.Equal(t, ExitUsage, r.code, r.stderr)
		require.Contains(t, r.stderr, "names no database: write mysql://user@127.0.0.1:3306/DBNAME")
	}
	r := run(t, Options{}, "mysql://root@tcp(127.0.0.1:3306)/db", "read", "--all")
	require.Equal(t, ExitUsage, r.code, r.stderr)
	require.Contains(t, r.stderr, "not go-sql-driver's user:pass@tcp(host:port)/db form: write mysql://user:pass@host:3306/db")
}

// TestConnectErrorsSayWhatToDo: a refused connection and a missing
// database are named as such, in one line, with what to do.
func TestConnectErrorsSayWhatToDo(t *testing.T) {
	for _, dsn := range []string{"postgres://u@127.0.0.1:1/x?connect_timeout=2", "mysql://u@127.0.0.1:1/x?timeout=2s"} {
		r := run(t, Options{}, dsn, "read", "--all")
		require.Equal(t, ExitError, r.code)
		require.Contains(t, r.stderr, "nothing answers at 127.0.0.1:1: is the server running?")
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	}
	testdb.EachDialectOf(t, []eventfold.Dialect{eventfold.Postgres, eventfold.MySQL}, func(t *testing.T, d eventfold.Dialect) {
		server := testdb.ServerDSN(t, d)
		u, err := url.Parse(server)
		require.NoError(t, err)
		u.Path = "/eftest_missing_h6"
		r := run(t, Options{}, u.String(), "read", "--all")
		require.Equal(t, ExitError, r.code)
		require.Contains(t, r.stderr, `database "eftest_missing_h6" does not exist on `)
		require.Contains(t, r.stderr, "CREATE DATABASE eftest_missing_h6")
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
	})
}

// TestMigrateStatusWritesNothing: `migrate status` on a database without
// the schema lists every migration as pending and creates no table (goose's
// own status would create its version table).
func TestMigrateStatusWritesNothing(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.EmptyDSN(t, d)
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		r := run(t, Options{}, dsn, "migrate", "status")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, "pending")
		require.Contains(t, r.stderr, "not installed")
		_, err = drv.DB().ExecContext(ctx, "SELECT 1 FROM "+eventfold.MigrationTable)
		require.Error(t, err, "migrate status created %s", eventfold.MigrationTable)
	})
}

// TestSchemaNewerThanEsctl: on a database migrated by a newer eventfold
// (a version above the highest this esctl embeds), the commands that write
// refuse with ErrSchemaNewer's message, naming both versions and what to
// do; the reading ones go on.
func TestSchemaNewerThanEsctl(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dir := t.TempDir()
		dsn := testdb.EmptyDSN(t, d)
		mustRun(t, dsn, "migrate", "up")
		mustRun(t, dsn, "append", "--stream", "account-1", "--type", "T", "--data", "{}")
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		known, err := eventfold.LatestSchemaVersion(d)
		require.NoError(t, err)
		applied := "1"
		if d == eventfold.Postgres {
			applied = "true"
		}
		_, err = drv.DB().Exec(fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, known+1, applied))
		require.NoError(t, err)

		for _, args := range [][]string{
			{"append", "--stream", "a-1", "--type", "T", "--data", "{}"},
			{"archive", "--before", "10", "--to", filepath.Join(dir, "old.jsonl.gz")},
			{"subscriptions", "reset", "x", "--to", "0"},
			{"migrate", "up"},
			{"migrate", "down"},
		} {
			r := run(t, Options{}, dsn, args...)
			require.Equal(t, ExitError, r.code, "%v: %s", args, r.stderr)
			require.Contains(t, r.stderr, fmt.Sprintf("newer than this eventfold knows: it is at version %d, this eventfold knows versions up to %d: upgrade this program", known+1, known), "%v", args)
		}
		for _, args := range [][]string{{"read", "--stream", "account-1"}, {"stats"}, {"subscriptions", "list"}} {
			mustRun(t, dsn, args...)
		}
		require.Contains(t, mustRun(t, dsn, "read", "--stream", "account-1"), `"T"`)
		evs, err := eventfold.New(drv, nil).ReadStream(ctx, "a-1", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Empty(t, evs, "append wrote")
	})
}
