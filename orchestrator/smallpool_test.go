package orchestrator_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

type spInc struct {
	Key string `json:"key"`
}

// TestDispatchOnSmallPools: commands with ids (idempotency: looked up and
// recorded in the command's transaction), from 12 goroutines at once,
// without group commit and with it (savepoints and batched, 4 committers
// by default: more committers than connections), on pools of 1, 2 and
// committers+1 connections. Every command commits once, a repeated id is
// answered as a duplicate; a committer waits for a connection, never holds
// one while it waits for another (the 2-minute context turns a hang into
// a failure).
func TestDispatchOnSmallPools(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		dsn := testdb.DSN(t, d)
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		modes := map[string]*orchestrator.GroupCommitConfig{
			"plain":     nil,
			"savepoint": {},
			"batched":   {Batched: true},
		}
		for _, n := range []int{1, 2, 5} {
			for mode, gc := range modes {
				t.Run(fmt.Sprintf("%s/max_open_conns=%d", mode, n), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					drv, err := sqldriver.Open(ctx, fmt.Sprintf("%s%smax_open_conns=%d", dsn, sep, n))
					require.NoError(t, err)
					defer drv.Close()
					store := eventfold.New(drv, nil)
					o := orchestrator.New(store, &orchestrator.Config{GroupCommit: gc, MaxAttempts: 50,
						BaseBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
					orchestrator.Handle(o, "Inc", func(ctx context.Context, tx *sql.Tx, c spInc) ([]orchestrator.Emit, error) {
						return []orchestrator.Emit{{Stream: "inc-" + c.Key, Expected: eventfold.Any, Type: "Inced", Data: c}}, nil
					})
					run := fmt.Sprintf("%s-%d", mode, n)
					var wg sync.WaitGroup
					for g := range 12 {
						wg.Go(func() {
							for i := range 4 {
								id := fmt.Sprintf("%s-%d-%d", run, g, i)
								cmd := orchestrator.Command{Name: "Inc", Envelope: orchestrator.Envelope{ID: id}, Payload: spInc{Key: fmt.Sprintf("%s-%d", run, g%3)}}
								first, err := o.Dispatch(ctx, cmd)
								if !assertNoError(t, err, id) {
									return
								}
								again, err := o.Dispatch(ctx, cmd)
								if !assertNoError(t, err, id+" again") {
									return
								}
								if !again.Duplicate || len(again.Events) != 1 || again.Events[0].ID != first.Events[0].ID {
									t.Errorf("%s dispatched again: duplicate %v, events %+v, first %+v", id, again.Duplicate, again.Events, first.Events)
								}
							}
						})
					}
					wg.Wait()
					var total int64
					for k := range 3 {
						evs, err := store.ReadStream(ctx, fmt.Sprintf("inc-%s-%d", run, k), eventfold.ReadStreamOptions{Limit: 100})
						require.NoError(t, err)
						total += int64(len(evs))
					}
					require.Equal(t, int64(48), total, "every command committed once")
				})
			}
		}
	})
}

func assertNoError(t *testing.T, err error, what string) bool {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return false
	}
	return true
}
