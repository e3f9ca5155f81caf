package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
)

// TestNewPipeline: a pipeline subscription hands the next batches while
// earlier ones are pending (up to inFlight, never more), calls the waits in
// order, and never moves its position past a batch whose wait failed, even
// when later batches' waits succeed: after the failure it waits for every
// batch in flight before handing anything again, and hands again from the
// failed batch. Once caught up everything is settled and the checkpoint
// saved (despite a 1h CheckpointInterval).
func TestNewPipeline(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		ctx := context.Background()
		all := appendSeq(t, store, "pipe-1", 60)
		var (
			mu          sync.Mutex
			sub         *listener.Subscription[*sql.Tx]
			outstanding int
			maxOut      int
			calls       []listener.Batch
			failedFirst int64 // first position of the batch that failed; 0 before
			afterFail   = -1  // index in calls of the first call after the failure
			waits       int
		)
		const inFlight = 3
		h := func(_ context.Context, b listener.Batch) (func() error, error) {
			mu.Lock()
			defer mu.Unlock()
			if failedFirst != 0 && afterFail < 0 {
				afterFail = len(calls)
				assert.Zero(t, outstanding, "handed a batch while batches from before the failure are in flight")
			}
			calls = append(calls, b)
			outstanding++
			maxOut = max(maxOut, outstanding)
			first := b.Events[0].GlobalPosition
			return func() error {
				// Let the reader run ahead before the first waits settle.
				// (assert, not require: this runs on the subscription's
				// goroutine.)
				time.Sleep(5 * time.Millisecond)
				mu.Lock()
				defer mu.Unlock()
				outstanding--
				waits++
				pos := sub.Stats().Position
				assert.Less(t, pos, first, "position %d passed batch %d.. before its wait returned", pos, first)
				if failedFirst == 0 && waits == 3 {
					failedFirst = first
					return errors.New("broker said no")
				}
				if failedFirst != 0 && afterFail < 0 {
					// Batches in flight behind the failed one settle with
					// success: the position must still not pass the
					// failed batch.
					assert.Less(t, pos, failedFirst)
				}
				return nil
			}, nil
		}
		var err error
		sub, err = listener.NewPipeline(store, "piper", h, inFlight, &listener.Options{BatchSize: 5, PollInterval: 10 * time.Millisecond,
			CheckpointInterval: time.Hour, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Logger: quietLogger()})
		require.NoError(t, err)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sub.Run(rctx) }()
		last := all[len(all)-1].GlobalPosition
		require.Eventually(t, func() bool {
			pos, _, err := listener.Checkpoint(ctx, store, "piper")
			return err == nil && pos == last
		}, time.Minute, 10*time.Millisecond)
		cancel()
		require.NoError(t, <-done)

		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, inFlight, maxOut, "read-ahead: %d batches were pending at most", maxOut)
		require.Positive(t, afterFail)
		require.Equal(t, failedFirst, calls[afterFail].Events[0].GlobalPosition, "after the failure, handing resumes at the failed batch")
		// Each call continues after the previous one, except the restart.
		var got []int64
		for i, b := range calls {
			if i == afterFail {
				got = got[:slices.Index(got, failedFirst)]
			}
			for _, ev := range b.Events {
				got = append(got, ev.GlobalPosition)
			}
		}
		var want []int64
		for _, ev := range all {
			want = append(want, ev.GlobalPosition)
		}
		require.Equal(t, want, got)
		require.EqualValues(t, len(all), sub.Stats().Delivered)
	})
}

// TestNewPipelineStopSavesInFlight: a stop while batches are in flight
// waits for their outcome and saves the progress of those acknowledged.
func TestNewPipelineStopSavesInFlight(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx := context.Background()
	all := appendSeq(t, store, "pipe-2", 40)
	var (
		mu      sync.Mutex
		handed  []listener.Batch
		release = make(chan struct{})
	)
	h := func(_ context.Context, b listener.Batch) (func() error, error) {
		mu.Lock()
		handed = append(handed, b)
		mu.Unlock()
		return func() error { <-release; return nil }, nil
	}
	sub, err := listener.NewPipeline(store, "stopper", h, 4, &listener.Options{BatchSize: 5, CheckpointInterval: time.Hour, Logger: quietLogger()})
	require.NoError(t, err)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sub.Run(rctx) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(handed) == 4 }, 30*time.Second, time.Millisecond)
	cancel()
	time.Sleep(50 * time.Millisecond)
	close(release)
	require.NoError(t, <-done)
	pos, _, err := listener.Checkpoint(ctx, store, "stopper")
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, handed, 4, "nothing handed after the stop")
	require.Equal(t, handed[3].Through, pos, "the four batches in flight were acknowledged: saved on stop")
	require.Less(t, pos, all[len(all)-1].GlobalPosition)
}

// TestNewPipelineMaxAttempts: a batch that keeps failing stops Run with a
// HandlerError naming its first event; the checkpoint stays before it.
func TestNewPipelineMaxAttempts(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx := context.Background()
	all := appendSeq(t, store, "pipe-3", 20)
	bad := all[10].GlobalPosition
	tries := 0
	h := func(_ context.Context, b listener.Batch) (func() error, error) {
		for _, ev := range b.Events {
			if ev.GlobalPosition == bad {
				// Alternate: fail in the handler, then in the wait.
				if tries++; tries%2 == 1 {
					return nil, errors.New("handler refuses")
				}
				return func() error { return errors.New("wait refuses") }, nil
			}
		}
		return func() error { return nil }, nil
	}
	sub, err := listener.NewPipeline(store, "giver-up", h, 2, &listener.Options{BatchSize: 4, MaxAttempts: 3,
		RetryMin: time.Millisecond, RetryMax: 2 * time.Millisecond, Logger: quietLogger()})
	require.NoError(t, err)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = sub.Run(rctx)
	var he *listener.HandlerError
	require.ErrorAs(t, err, &he)
	require.Equal(t, 3, he.Attempts)
	pos, _, err := listener.Checkpoint(ctx, store, "giver-up")
	require.NoError(t, err)
	require.Less(t, pos, bad)
	require.LessOrEqual(t, he.Event.GlobalPosition, bad)
	require.Greater(t, he.Event.GlobalPosition, pos)
}

func appendSeq(t *testing.T, store *eventfold.Store[*sql.Tx], stream string, n int) []eventfold.Event {
	t.Helper()
	var all []eventfold.Event
	for i := range n {
		out, err := store.Append(context.Background(), stream, eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)})
		require.NoError(t, err)
		all = append(all, out...)
	}
	return all
}
