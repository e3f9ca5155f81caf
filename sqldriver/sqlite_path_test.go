package sqldriver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/sqldriver"
)

// TestSQLitePathIsTheFileOpened: the file a sqlite:// DSN opens is the one
// SQLitePath names (esctl checks that one before it opens anything), and
// two DSNs that name different files open different files. Before the fix
// the path went to SQLite as a URI unescaped: "#" ended it, so
// sqlite://…/ledger#1.db and sqlite://…/ledger#2.db both opened one file
// named "ledger" (two stores mixed into one), and "%20" was decoded when
// the file was created but not when esctl looked for it, so every command
// after `migrate up` said there was no database.
func TestSQLitePathIsTheFileOpened(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ dsnPath, file string }{
		{"ledger#1.db", "ledger#1.db"},
		{"ledger#2.db", "ledger#2.db"},
		{"with space.db", "with space.db"},
		{"escaped%20space.db", "escaped space.db"},
		{"percent%25.db", "percent%.db"},
		{"question%3Fmark.db", "question?mark.db"},
	}
	ctx := context.Background()
	for i, c := range cases {
		dsn := "sqlite://" + filepath.ToSlash(dir) + "/" + c.dsnPath
		path, err := sqldriver.SQLitePath(dsn)
		require.NoError(t, err, dsn)
		require.Equal(t, filepath.Join(dir, c.file), path, dsn)

		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err, dsn)
		_, err = drv.DB().ExecContext(ctx, `CREATE TABLE marker (n INTEGER)`)
		require.NoError(t, err, "%s: a table of that name already exists: another DSN opened the same file", dsn)
		_, err = drv.DB().ExecContext(ctx, `INSERT INTO marker VALUES (?)`, i)
		require.NoError(t, err)
		require.NoError(t, drv.Close())
		_, err = os.Stat(path)
		require.NoError(t, err, "%s: the file SQLitePath names was created", dsn)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var dbs []string
	for _, e := range entries {
		if filepath.Ext(e.Name()) == ".db" {
			dbs = append(dbs, e.Name())
		}
	}
	require.Len(t, dbs, len(cases), "one file per DSN: %v", dbs)

	_, err = sqldriver.SQLitePath("sqlite://" + dir + "/bad%zz.db")
	require.Error(t, err, "a bad escape is refused, not guessed at")
}
