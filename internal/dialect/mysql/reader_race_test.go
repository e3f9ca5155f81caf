package mysql_test

import (
	"context"
	"database/sql"
	"errors"
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
	gates := mysqlops.GateTakes()

	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[int64]bool{}
	for w := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelReadCommitted})
				if err != nil {
					t.Error(err)
					return
				}
				evs, err := mysqlops.New(tx).Append(context.Background(), fmt.Sprintf("w%d-%d", w, i%4), eventfold.Any, []eventfold.EventData{newEvent("Tick")})
				if err != nil {
					_ = tx.Rollback()
					if !errors.Is(err, eventfold.ErrTransient) {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					continue // a deadlock or lock timeout: the position stays dead
				}
				if i%9 == 0 {
					if err := tx.Rollback(); err != nil {
						t.Errorf("writer %d rollback: %v", w, err)
						return
					}
					continue
				}
				// A COMMIT that fails is reported: its position's fate would
				// be unknown, and the count below would not hold.
				if err := tx.Commit(); err != nil {
					t.Errorf("writer %d commit: %v", w, err)
					return
				}
				mu.Lock()
				committed[evs[0].GlobalPosition] = true
				mu.Unlock()
			}
		})
	}
	// Positions are not dense since 00015 (rolled-back ones stay dead), so
	// a skip is a committed position a reader never delivers: each reader
	// keeps what it read, and once the writers are done reads to the end.
	var skips atomic.Int64
	var firstSkip atomic.Value
	var rwg sync.WaitGroup
	for range readers {
		rwg.Go(func() {
			ops := mysqlops.New(db)
			next := int64(1)
			var got []int64
			for {
				done := ctx.Err() != nil
				evs, err := ops.ReadAll(context.Background(), next, 50)
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range evs {
					if e.GlobalPosition < next {
						t.Errorf("position %d after %d", e.GlobalPosition, next-1)
					}
					got = append(got, e.GlobalPosition)
					next = e.GlobalPosition + 1
				}
				if done && len(evs) == 0 {
					break
				}
			}
			wg.Wait() // the writers are done: read what is left
			for {
				evs, err := ops.ReadAll(context.Background(), next, 50)
				require.NoError(t, err)
				if len(evs) == 0 {
					break
				}
				for _, e := range evs {
					got = append(got, e.GlobalPosition)
					next = e.GlobalPosition + 1
				}
			}
			mu.Lock()
			defer mu.Unlock()
			seen := map[int64]bool{}
			for _, p := range got {
				seen[p] = true
			}
			for p := range committed {
				if !seen[p] {
					skips.Add(1)
					firstSkip.CompareAndSwap(nil, fmt.Sprintf("position %d", p))
				}
			}
			if len(seen) != len(committed) {
				t.Errorf("a reader delivered %d positions, %d committed", len(seen), len(committed))
			}
		})
	}
	wg.Wait()
	rwg.Wait()
	require.Greater(t, len(committed), writers, "the writers committed too little for the race to be tried")
	require.Zero(t, skips.Load(), "readers passed over committed positions (first: %v)", firstSkip.Load())
	t.Logf("%d appends committed; no reader skipped a position; readers took the gate %d times (whole process)", len(committed), mysqlops.GateTakes()-gates)
}

// insertRaw writes an event row at a position of the caller's choosing,
// the way esctl restore puts archived events back.
func insertRaw(t *testing.T, db interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, pos int64) {
	t.Helper()
	e := newEvent("Raw")
	_, err := db.ExecContext(context.Background(), `INSERT INTO eventfold_events
		(global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
		VALUES (?, ?, 1, ?, ?, ?, ?, UTC_TIMESTAMP(6))`, pos, fmt.Sprintf("raw-%d", pos), e.ID, e.Type, e.Data, e.Metadata)
	require.NoError(t, err)
}

func positionsOf(evs []eventfold.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.GlobalPosition
	}
	return out
}

// TestReadAllWaitsAtAHoleBelowACommittedPosition: position 2 is written by
// a transaction still open while 1 and 3 have committed. ReadAll must not
// hand out 3 (a reader continuing after it would lose 2): it waits for the
// writer, then returns 1, 2, 3. Before the fix it returned 1, 3 at once.
func TestReadAllWaitsAtAHoleBelowACommittedPosition(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	insertRaw(t, db, 1)
	insertRaw(t, db, 3)
	tx := begin(t, db)
	insertRaw(t, tx, 2)

	got := make(chan []int64, 1)
	go func() {
		evs, err := mysqlops.New(db).ReadAll(ctx, 1, 10)
		if err != nil {
			t.Error(err)
		}
		got <- positionsOf(evs)
	}()
	select {
	case p := <-got:
		t.Fatalf("ReadAll returned %v while position 2 was still being written", p)
	case <-time.After(500 * time.Millisecond):
	}
	require.NoError(t, tx.Commit())
	select {
	case p := <-got:
		require.Equal(t, []int64{1, 2, 3}, p)
	case <-time.After(10 * time.Second):
		t.Fatal("ReadAll did not return after the writer committed")
	}
}

// TestReadAllPassesDeadHoles: a position that holds no event and never
// will (archived, or a torn bare CALL from before 00005) must not stop
// readers: the locking re-read proves it dead, and ReadAll goes on. A
// rolled-back writer in the hole leaves it dead too.
func TestReadAllPassesDeadHoles(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	for _, p := range []int64{1, 2, 5, 6} {
		insertRaw(t, db, p)
	}
	for from, want := range map[int64][]int64{0: {1, 2, 5, 6}, 1: {1, 2, 5, 6}, 3: {5, 6}, 5: {5, 6}, 7: {}} {
		evs, err := ops.ReadAll(ctx, from, 10)
		require.NoError(t, err)
		require.Equal(t, want, positionsOf(evs), "from %d", from)
	}
	evs, err := ops.ReadAll(ctx, 1, 3)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 5}, positionsOf(evs), "the limit holds across a hole")

	tx := begin(t, db)
	insertRaw(t, tx, 3)
	done := make(chan []int64, 1)
	go func() {
		evs, err := ops.ReadAll(ctx, 3, 10)
		if err != nil {
			t.Error(err)
		}
		done <- positionsOf(evs)
	}()
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, tx.Rollback())
	select {
	case p := <-done:
		require.Equal(t, []int64{5, 6}, p)
	case <-time.After(10 * time.Second):
		t.Fatal("ReadAll did not return after the writer rolled back")
	}
}
