package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

// TestAttackStartAtHeadAfterTheWholeLogWasArchived: esctl archive may
// archive the whole log (--before is capped at head+1). The hot table is
// then empty, Head answered 0, and everything that starts "at the head"
// started below the archive: Tail(StartAtHead) and `esctl tail` failed at
// once with ErrArchived, and a new Subscription with StartAtHead stored
// checkpoint 0 and failed for ever (seen: esctl tail on a SQLite file
// archived with --before 5 printed "events before global position 5 are
// archived" and exited 1). Every position below the watermark is settled
// (archived), so the head is at least the watermark - 1.
func TestAttackStartAtHeadAfterTheWholeLogWasArchived(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		ctx := context.Background()
		var last int64
		for range 3 {
			evs, err := store.Append(ctx, "arch-all", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
			require.NoError(t, err)
			last = evs[0].GlobalPosition
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := store.WaitHead(wctx, last)
		require.NoError(t, err)
		ops := store.Driver().Ops()
		require.NoError(t, ops.SetArchivedBefore(ctx, last+1))
		_, err = ops.DeleteEventRange(ctx, 0, last)
		require.NoError(t, err)

		h, err := store.Head(ctx)
		require.NoError(t, err)
		require.Equal(t, last, h, "the head of a wholly archived log is the last archived position")

		// A tail from the head delivers the next event.
		got := make(chan int64, 1)
		tctx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		tailErr := make(chan error, 1)
		go func() {
			tailErr <- listener.Tail(tctx, store, listener.StartAtHead, &listener.Options{PollInterval: 20 * time.Millisecond, Logger: quietLogger()},
				func(_ context.Context, b listener.Batch) error {
					for _, e := range b.Events {
						got <- e.GlobalPosition
						return errors.New("done")
					}
					return nil
				})
		}()
		// Let Tail read its head before the append.
		time.Sleep(300 * time.Millisecond)
		evs, err := store.Append(ctx, "arch-all", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
		require.NoError(t, err)
		select {
		case p := <-got:
			require.Equal(t, evs[0].GlobalPosition, p)
		case err := <-tailErr:
			t.Fatalf("Tail(StartAtHead) on a wholly archived log ended before delivering: %v", err)
		case <-tctx.Done():
			t.Fatal("Tail(StartAtHead) delivered nothing in 30 s")
		}

		// A new subscription from the head starts at the last archived
		// position and delivers what comes next.
		delivered := make(chan int64, 10)
		sub, err := listener.New(store, "from-head", func(_ context.Context, e eventfold.Event) error {
			delivered <- e.GlobalPosition
			return nil
		}, &listener.Options{StartAt: listener.StartAtHead, PollInterval: 20 * time.Millisecond, Logger: quietLogger(),
			RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
		require.NoError(t, err)
		sctx, sstop := context.WithCancel(ctx)
		defer sstop()
		subDone := make(chan error, 1)
		go func() { subDone <- sub.Run(sctx) }()
		require.Eventually(t, func() bool {
			_, found, err := listener.Checkpoint(ctx, store, "from-head")
			require.NoError(t, err)
			return found
		}, 10*time.Second, 20*time.Millisecond)
		pos, _, err := listener.Checkpoint(ctx, store, "from-head")
		require.NoError(t, err)
		require.Equal(t, evs[0].GlobalPosition, pos, "StartAtHead stores the head, not a position inside the archive")
		evs, err = store.Append(ctx, "arch-all", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
		require.NoError(t, err)
		select {
		case p := <-delivered:
			require.Equal(t, evs[0].GlobalPosition, p)
		case <-time.After(20 * time.Second):
			t.Fatalf("the StartAtHead subscription delivered nothing; last error: %s", sub.Stats().LastError)
		}
		sstop()
		require.NoError(t, <-subDone)
	})
}
