package sqldriver_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/sqldriver"
)

// TestSQLiteWriterGate: write transactions of one process on one SQLite
// file pass a gate in Go (sqlitedriver/gate.go). Checked here: two pools
// opened on the same file share it (a write transaction of one keeps the
// other's BEGIN waiting, until its context ends, with the context's error
// and not SQLITE_BUSY); COMMIT, ROLLBACK and a BEGIN that fails hand it on
// (later transactions begin); read-only transactions do not take it; and
// 16 goroutines writing at once all commit, none failing busy.
func TestSQLiteWriterGate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gate.db")
	open := func() *sql.DB {
		d, err := sqldriver.Open(ctx, "sqlite://"+path)
		require.NoError(t, err)
		t.Cleanup(func() { d.Close() })
		return d.DB()
	}
	a, b := open(), open()
	_, err := a.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)`)
	require.NoError(t, err)

	tx, err := a.BeginTx(ctx, nil)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = b.BeginTx(wctx, nil)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "the other pool's BEGIN waits for the gate")
	ro, err := b.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	require.NoError(t, err, "a read-only transaction takes no gate")
	var n int
	require.NoError(t, ro.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n))
	require.NoError(t, ro.Rollback())
	_, err = tx.ExecContext(ctx, `INSERT INTO t (v) VALUES ('a')`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	tx, err = b.BeginTx(ctx, nil)
	require.NoError(t, err, "COMMIT handed the gate on")
	require.NoError(t, tx.Rollback())
	tx, err = a.BeginTx(ctx, nil)
	require.NoError(t, err, "ROLLBACK handed the gate on")
	require.NoError(t, tx.Rollback())
	cctx, cancelNow := context.WithCancel(ctx)
	cancelNow()
	_, err = a.BeginTx(cctx, nil)
	require.Error(t, err)
	tx, err = b.BeginTx(ctx, nil)
	require.NoError(t, err, "a failed BEGIN holds no gate")
	require.NoError(t, tx.Rollback())

	var wg sync.WaitGroup
	errs := make(chan error, 16*20)
	for w := range 16 {
		db := a
		if w%2 == 1 {
			db = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				tx, err := db.BeginTx(ctx, nil)
				if err != nil {
					errs <- err
					return
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (v) VALUES (?)`, fmt.Sprintf("%d-%d", w, i)); err != nil {
					_ = tx.Rollback()
					errs <- err
					return
				}
				if err := tx.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, a.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n))
	require.Equal(t, 1+16*20, n)
}
