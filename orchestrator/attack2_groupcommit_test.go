package orchestrator_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// panicOnceObserver panics the first time a batch commits.
type panicOnceObserver struct{ fired atomic.Bool }

func (*panicOnceObserver) StartDispatch(ctx context.Context, _ orchestrator.Command) (context.Context, func(*orchestrator.Result, error)) {
	return ctx, func(*orchestrator.Result, error) {}
}
func (*panicOnceObserver) StartStep(ctx context.Context, _ orchestrator.Step) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (*panicOnceObserver) AttemptFailed(context.Context, orchestrator.Command, int, error, bool) {}
func (o *panicOnceObserver) BatchCommitted(context.Context, int) {
	if o.fired.CompareAndSwap(false, true) {
		panic("attack2: observer panics in BatchCommitted")
	}
}
func (*panicOnceObserver) EventMetadata(context.Context, map[string]any) {}

// TestAttack2GroupCommitPanicLeavesNoSlotBehind: a panic that leaves a
// committer's runBatch (here the Observer's BatchCommitted, in the
// goroutine of the caller that led the batch: that caller gets the panic)
// must not keep the committer slot. Since a committer beyond the first
// runs only when MaxBatch/4 commands wait, one leaked slot made every
// later lone command wait for ever (no committer runs, none starts).
func TestAttack2GroupCommitPanicLeavesNoSlotBehind(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			store := testdb.SQLStore(t, d)
			obs := &panicOnceObserver{}
			release, started := make(chan struct{}), make(chan struct{}, 1)
			o := orchestrator.New(store, &orchestrator.Config{
				Observer:    obs,
				GroupCommit: &orchestrator.GroupCommitConfig{Committers: 4}, // MaxBatch 32: a second committer needs 8 queued
			})
			orchestrator.Handle(o, "Gate", func(ctx context.Context, tx *sql.Tx, _ gcGate) ([]orchestrator.Emit, error) {
				started <- struct{}{}
				<-release
				return []orchestrator.Emit{{Stream: "gate", Expected: eventfold.Any, Type: "Gated", Data: struct{}{}}}, nil
			})
			orchestrator.Handle(o, "Add", func(ctx context.Context, tx *sql.Tx, c gcAdd) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "s-" + c.Counter, Expected: eventfold.Any, Type: "Added", Data: gcAdded{}}}, nil
			})
			ctx := context.Background()
			gateDone := make(chan error, 1)
			go func() {
				_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Gate", Payload: gcGate{}})
				gateDone <- err
			}()
			<-started
			var wg sync.WaitGroup
			var panics atomic.Int64
			dispatch := func(i int) {
				defer func() {
					if v := recover(); v != nil {
						panics.Add(1)
					}
				}()
				if _, err := o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: fmt.Sprint(i)}}); err != nil {
					t.Errorf("command %d: %v", i, err)
				}
			}
			for i := range 7 {
				wg.Go(func() { dispatch(i) })
			}
			// (Before the MaxBatch/4 rule free slots took them: they never
			// queue, and no batch of 8 forms.)
			gathered := waitFor(func() bool { return orchestrator.QueuedForTest(o) >= 7 })
			wg.Go(func() { dispatch(7) }) // the 8th leads the batch of 8 and gets the panic
			waitFor(func() bool { return orchestrator.QueuedForTest(o) == 0 })
			close(release) // (SQLite: the batch waits for the gate's write lock)
			if err := <-gateDone; err != nil {
				t.Fatal(err)
			}
			wg.Wait()
			if gathered && panics.Load() != 1 {
				t.Fatalf("%d callers panicked, want 1", panics.Load())
			}
			done := make(chan error, 1)
			go func() {
				_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: "lone"}})
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("a lone command after the panic is not answered in 20 s (queued: %d): no committer runs", orchestrator.QueuedForTest(o))
			}
		})
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}
