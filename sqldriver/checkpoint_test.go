package sqldriver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
)

// TestSQLiteWALCheckpointedInTheBackground: a Driver made by Open copies
// the WAL into the database file from its own connection, before the WAL
// reaches the size at which a committing connection would (SQLite's
// default was 1,000 frames, inside the COMMIT of whichever writer crossed
// it, and every queued writer waited for it). 300 transactions of a 1 KiB
// row write some 300-600 frames; the rows must reach the database file
// itself within seconds. Before the checkpointer, the file stayed as
// CREATE TABLE left it until the 1,000th frame.
func TestSQLiteWALCheckpointedInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	drv, err := Open(ctx, "sqlite://"+filepath.ToSlash(path))
	require.NoError(t, err)
	defer drv.Close()
	db := drv.DB()
	var auto int
	require.NoError(t, db.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto))
	require.Equal(t, 4000, auto, "a committing connection checkpoints only as a backstop")
	_, err = db.ExecContext(ctx, `CREATE TABLE c (id INTEGER PRIMARY KEY, v BLOB NOT NULL)`)
	require.NoError(t, err)
	for i := range 300 {
		tx, err := drv.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO c (id, v) VALUES (?, randomblob(1024))`, i)
		require.NoError(t, err)
		require.NoError(t, drv.Commit(ctx, tx))
	}
	var size int64
	require.Eventually(t, func() bool {
		st, err := os.Stat(path)
		require.NoError(t, err)
		size = st.Size()
		return size >= 300*1024
	}, 5*time.Second, 20*time.Millisecond, "database file %d bytes: the WAL was not checkpointed", size)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM c`).Scan(&n))
	require.Equal(t, 300, n)
}

// TestSQLiteWALCheckpointerOnlyWhereItApplies: no checkpointer for an
// in-memory database, nor when the DSN sets wal_autocheckpoint itself
// (its value then stands); Close stops it.
func TestSQLiteWALCheckpointerOnlyWhereItApplies(t *testing.T) {
	ctx := context.Background()
	dir := filepath.ToSlash(t.TempDir())
	for _, c := range []struct {
		dsn  string
		ckpt bool
		auto int
	}{
		{"sqlite://" + dir + "/a.db", true, 4000},
		{"sqlite://" + dir + "/b.db?_pragma=wal_autocheckpoint(1000)", false, 1000},
		{"sqlite://" + dir + "/c.db?_pragma=WAL_AUTOCHECKPOINT=0", false, 0},
		{"sqlite://:memory:", false, 4000},
	} {
		t.Run(strings.TrimPrefix(c.dsn, "sqlite://"+dir), func(t *testing.T) {
			drv, err := Open(ctx, c.dsn)
			require.NoError(t, err)
			require.Equal(t, c.ckpt, drv.ckpt != nil)
			var auto int
			require.NoError(t, drv.DB().QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto))
			require.Equal(t, c.auto, auto)
			w := drv.ckpt
			require.NoError(t, drv.Close())
			if w != nil {
				select {
				case <-w.done:
				default:
					t.Fatal("the checkpointer still runs after Close")
				}
			}
		})
	}
}
