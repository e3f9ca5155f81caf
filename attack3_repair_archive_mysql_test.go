package eventfold_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestAttack3MySQLRepairRacesArchive: an operator runs `esctl doctor
// --repair` (and a deploy runs `migrate up`, the same repair) while `esctl
// archive` moves the watermark and deletes, appenders keep appending, and
// a DBA resets AUTO_INCREMENT on the table whenever archive has emptied it.
// Every answered append must get a position no other got, above every
// position archived before it committed; every event at or above the final
// watermark must still be readable; at the end doctor finds nothing to
// repair.
func TestAttack3MySQLRepairRacesArchive(t *testing.T) {
	ctx := context.Background()
	store, db, _ := mysqlPositionStore(t)
	ops := store.Driver().Ops()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int64]string{}
	errs := make(chan error, 16)
	var archivedThrough atomic.Int64 // highest position deleted by the archiver so far

	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				floor := archivedThrough.Load()
				evs, err := store.Append(ctx, fmt.Sprintf("r-%d", w), eventfold.Exact(int64(i)), positionData)
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
				p := evs[0].GlobalPosition
				mu.Lock()
				dup, had := got[p]
				got[p] = evs[0].StreamID
				mu.Unlock()
				if had || p <= floor {
					errs <- fmt.Errorf("position %d (stream %s, also %q) handed out twice or at/below archived %d", p, evs[0].StreamID, dup, floor)
					return
				}
			}
		}()
	}
	for range 2 { // doctor --repair and migrate up at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := store.CheckPositions(ctx, true); err != nil {
					errs <- fmt.Errorf("repair: %w", err)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	// The archiver and the DBA, in the test goroutine.
	deadline := time.Now().Add(4 * time.Second)
	rounds := 0
	for time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(50 * time.Millisecond)
		head, err := ops.LastPosition(ctx)
		require.NoError(t, err)
		w, err := ops.ArchivedBefore(ctx)
		require.NoError(t, err)
		if head+1 <= w {
			continue
		}
		moved, err := ops.SwapArchivedBefore(ctx, w, head+1)
		require.NoError(t, err)
		require.True(t, moved)
		_, err = ops.DeleteEventRange(ctx, max(w, 1), head)
		require.NoError(t, err)
		archivedThrough.Store(head)
		// Empty now unless an append landed since: then this does nothing.
		_, err = db.ExecContext(ctx, `ALTER TABLE eventfold_events AUTO_INCREMENT = 1`)
		require.NoError(t, err)
		rounds++
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d archive rounds, %d appends", rounds, len(got))
	require.Greater(t, rounds, 3)
	w, err := ops.ArchivedBefore(ctx)
	require.NoError(t, err)
	rest, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: w, Limit: 100000})
	require.NoError(t, err)
	want := 0
	for p := range got {
		if p >= w {
			want++
		}
	}
	require.Len(t, rest, want, "every event at or above the watermark %d is readable", w)
	pc, err := store.CheckPositions(ctx, false)
	require.NoError(t, err)
	require.False(t, pc.Moved, "%+v", pc)
}
