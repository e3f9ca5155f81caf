package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestReaderNeverSkipsCommitRace hammers the log with short appending
// transactions while several readers follow it from "last position + 1" as
// fast as they can. On MariaDB a new read view is copied from a lock-free
// hash of running transactions without stopping commits, so a plain read
// can show a later commit without an earlier one that already released the
// counter lock; the reader must never pass over such a position. It ran
// into that hole within seconds before ReadAll delivered only what follows
// on without a gap.
func TestReaderNeverSkipsCommitRace(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	db.SetMaxOpenConns(32)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	const writers, readers = 12, 4

	var wg sync.WaitGroup
	var committed atomic.Int64
	for w := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelReadCommitted})
				if err != nil {
					t.Error(err)
					return
				}
				_, err = mysqlops.New(tx).Append(context.Background(), fmt.Sprintf("w%d-%d", w, i%4), eventfold.Any, []eventfold.EventData{newEvent("Tick")})
				if err != nil {
					_ = tx.Rollback()
					continue // a deadlock or lock timeout: the position goes back
				}
				if i%9 == 0 {
					require.NoError(t, tx.Rollback())
					continue
				}
				if err := tx.Commit(); err == nil {
					committed.Add(1)
				}
			}
		})
	}
	var skips atomic.Int64
	var firstSkip atomic.Value
	for range readers {
		wg.Go(func() {
			ops := mysqlops.New(db)
			next := int64(1)
			for ctx.Err() == nil {
				evs, err := ops.ReadAll(context.Background(), next, 50)
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range evs {
					if e.GlobalPosition != next {
						skips.Add(1)
						firstSkip.CompareAndSwap(nil, fmt.Sprintf("read from %d, got position %d", next, e.GlobalPosition))
					}
					next = e.GlobalPosition + 1
				}
			}
		})
	}
	wg.Wait()
	require.Zero(t, skips.Load(), "readers passed over committed positions (first: %v)", firstSkip.Load())
	t.Logf("%d appends committed; no reader skipped a position", committed.Load())
}
