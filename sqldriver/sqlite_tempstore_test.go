package sqldriver_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/sqldriver"
)

// deletedFiles lists the files this process holds open that were deleted
// (how SQLite's temporary files look: created, then unlinked at once).
func deletedFiles(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	out := map[string]bool{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasSuffix(target, " (deleted)") {
			out[e.Name()+" "+target] = true
		}
	}
	return out
}

// TestSQLiteStatementJournalStaysInMemory: a statement that writes many
// rows inside a transaction (what group commit's batched INSERT and a
// batch reducer's upsert are) keeps its statement journal in memory. Before
// sqldriver set temp_store=MEMORY, a journal past 64 KiB went to a
// temporary file (a pwrite per journaled page, in every batch: 0.56
// system calls per command at 16 clients); _pragma=temp_store(DEFAULT) in
// the DSN is that old behaviour, and the test checks it still spills, so
// that it measures something.
func TestSQLiteStatementJournalStaysInMemory(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		query string
		spill bool
	}{{"", false}, {"?_pragma=temp_store(DEFAULT)", true}} {
		t.Run(fmt.Sprintf("spill=%v", c.spill), func(t *testing.T) {
			dsn := "sqlite://" + filepath.ToSlash(t.TempDir()) + "/j.db" + c.query
			drv, err := sqldriver.Open(ctx, dsn)
			require.NoError(t, err)
			defer drv.Close()
			db := drv.DB()
			db.SetMaxOpenConns(1)
			var store int
			require.NoError(t, db.QueryRowContext(ctx, `PRAGMA temp_store`).Scan(&store))
			if c.spill {
				require.Equal(t, 0, store)
			} else {
				require.Equal(t, 2, store, "temp_store: want MEMORY (2)")
			}
			_, err = db.ExecContext(ctx, `CREATE TABLE j (k TEXT PRIMARY KEY, v TEXT NOT NULL)`)
			require.NoError(t, err)
			// 4,000 rows in key order: some hundred leaf pages.
			_, err = db.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
				INSERT INTO j SELECT printf('k%08d', i * 10), hex(randomblob(40)) FROM n`)
			require.NoError(t, err)
			before := deletedFiles(t)
			tx, err := db.BeginTx(ctx, nil)
			require.NoError(t, err)
			// One row first, then one statement inserting between existing
			// keys all over the table: every leaf it changes is journaled.
			_, err = tx.ExecContext(ctx, `UPDATE j SET v = 'x' WHERE k = 'k00000010'`)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
				INSERT INTO j SELECT printf('k%08d', i * 10 + 5), 'y' FROM n WHERE i % 10 = 0`)
			require.NoError(t, err)
			after := deletedFiles(t)
			require.NoError(t, tx.Commit())
			var opened []string
			for f := range after {
				if !before[f] {
					opened = append(opened, f)
				}
			}
			if c.spill {
				require.NotEmpty(t, opened, "with temp_store DEFAULT the statement journal should spill to a temporary file")
			} else {
				require.Empty(t, opened, "temporary files opened by the transaction")
			}
		})
	}
}
