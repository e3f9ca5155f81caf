package orchestrator_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// TestAttack2GroupCommitNoLostWakeUp: bursts of commands, some cancelled
// before or while they wait, some failing in their handler, then silence
// and a lone command, for small MaxBatch (MaxBatch/4 of 0 and 1) and
// 1, 2 or 4 committers: every Dispatch returns, and the lone command is
// answered at once.
func TestAttack2GroupCommitNoLostWakeUp(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			store := testdb.SQLStore(t, d)
			for _, maxBatch := range []int{1, 2, 3, 4, 5, 9} {
				for _, committers := range []int{1, 2, 4} {
					for _, batched := range []bool{false, true} {
						o := orchestrator.New(store, &orchestrator.Config{
							GroupCommit: &orchestrator.GroupCommitConfig{MaxBatch: maxBatch, Committers: committers, Batched: batched},
						})
						orchestrator.Handle(o, "Add", func(ctx context.Context, tx *sql.Tx, c gcAdd) ([]orchestrator.Emit, error) {
							if c.Fail == "handler" {
								return nil, errGCRefused
							}
							return []orchestrator.Emit{{Stream: "w-" + c.Counter, Expected: eventfold.Any, Type: "Added", Data: gcAdded{}}}, nil
						})
						name := fmt.Sprintf("mb%d-c%d-b%t", maxBatch, committers, batched)
						var wg sync.WaitGroup
						for g := range 12 {
							wg.Go(func() {
								for i := range 6 {
									ctx, cancel := context.WithCancel(context.Background())
									switch (g + i) % 4 {
									case 1:
										cancel()
									case 2:
										ctx, cancel = context.WithTimeout(context.Background(), time.Duration(i*50)*time.Microsecond)
									}
									fail := ""
									if (g*7+i)%5 == 0 {
										fail = "handler"
									}
									_, _ = o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: fmt.Sprintf("%s-%d-%d", name, g, i%3), Fail: fail}})
									cancel()
								}
							})
						}
						all := make(chan struct{})
						go func() { wg.Wait(); close(all) }()
						select {
						case <-all:
						case <-time.After(60 * time.Second):
							t.Fatalf("%s: a burst's Dispatch did not return in 60 s (queued %d)", name, orchestrator.QueuedForTest(o))
						}
						done := make(chan error, 1)
						start := time.Now()
						go func() {
							_, err := o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: name + "-lone"}})
							done <- err
						}()
						select {
						case err := <-done:
							if err != nil {
								t.Fatalf("%s: lone: %v", name, err)
							}
						case <-time.After(20 * time.Second):
							t.Fatalf("%s: lone command after the burst unanswered (queued %d)", name, orchestrator.QueuedForTest(o))
						}
						if el := time.Since(start); el > 5*time.Second {
							t.Errorf("%s: lone command took %v", name, el)
						}
					}
				}
			}
		})
	}
}
