package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

// TestNewBatch: a batch subscription gets every event once, in order; a
// failing batch is retried whole and the checkpoint never passes it; with a
// long CheckpointInterval the checkpoint is still saved once caught up and
// on stop, so a restart resumes exactly after the last batch handled.
func TestNewBatch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		ctx := context.Background()
		appendEvents := func(n int) []eventfold.Event {
			var all []eventfold.Event
			for i := range n {
				out, err := store.Append(ctx, "batch-1", eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)})
				require.NoError(t, err)
				all = append(all, out...)
			}
			return all
		}
		first := appendEvents(30)
		var (
			mu    sync.Mutex
			got   []int64
			fails = 1
		)
		run := func() (stop func()) {
			sub, err := listener.NewBatch(store, "batcher", func(ctx context.Context, b listener.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				if fails > 0 {
					fails--
					return errors.New("first attempt fails")
				}
				for _, ev := range b.Events {
					got = append(got, ev.GlobalPosition)
				}
				return nil
			}, &listener.Options{BatchSize: 7, PollInterval: 10 * time.Millisecond, CheckpointInterval: time.Hour,
				RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Logger: quietLogger()})
			require.NoError(t, err)
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- sub.Run(rctx) }()
			return func() { cancel(); require.NoError(t, <-done) }
		}
		stop := run()
		last := first[len(first)-1].GlobalPosition
		require.Eventually(t, func() bool {
			pos, _, err := listener.Checkpoint(ctx, store, "batcher")
			return err == nil && pos == last // saved once caught up, despite the 1h interval
		}, 30*time.Second, 10*time.Millisecond)
		more := appendEvents(5)
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 35 }, 30*time.Second, 10*time.Millisecond)
		stop()
		pos, _, err := listener.Checkpoint(ctx, store, "batcher")
		require.NoError(t, err)
		require.Equal(t, more[len(more)-1].GlobalPosition, pos, "saved on stop")
		later := appendEvents(3)
		stop = run()
		require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 38 }, 30*time.Second, 10*time.Millisecond)
		stop()
		var want []int64
		for _, ev := range append(append(first, more...), later...) {
			want = append(want, ev.GlobalPosition)
		}
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, want, got)
	})
}
