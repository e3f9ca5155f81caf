package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// TestAttack2PgxBatchedLostCommitReply: batched group commit on pgx, its
// idempotency records sent with COMMIT, with the COMMIT's reply lost (the
// batch committed: answered from the marker) or the COMMIT lost (nothing
// committed: each command dispatched on its own). A batch holds an id
// twice (same payload) and a command that fails in its handler. Every
// caller gets its events (the repeat: the first's, as a replay), the
// failing one its error, each command is applied once, and a
// re-dispatch of every id replays.
func TestAttack2PgxBatchedLostCommitReply(t *testing.T) {
	for _, drop := range []string{"reply", "query"} {
		t.Run(drop, func(t *testing.T) {
			ctx := context.Background()
			proxy := testdb.StartCommitProxy(t, testdb.DSN(t, eventfold.Postgres))
			drv := openPgx(t, proxy.DSN)
			store, o := pgxWallet(t, drv, orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1, Batched: true}})
			started, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			orchestrator.Handle(o, "Gate", func(ctx context.Context, _ pgx.Tx, _ struct{}) ([]orchestrator.Emit, error) {
				once.Do(func() { close(started) })
				<-release
				return nil, nil
			})
			orchestrator.Handle(o, "Refuse", func(ctx context.Context, _ pgx.Tx, _ struct{}) ([]orchestrator.Emit, error) {
				return nil, errGCRefused
			})
			run := fmt.Sprintf("%d", time.Now().UnixNano())
			gateDone := make(chan error, 1)
			go func() {
				_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Gate", Payload: struct{}{}})
				gateDone <- err
			}()
			<-started
			type cmd struct{ name, payload, key string }
			cmds := []cmd{
				{"Deposit", fmt.Sprintf(`{"wallet":"a%s","amount":1}`, run), "ka"},
				{"Deposit", fmt.Sprintf(`{"wallet":"b%s","amount":2}`, run), "kb"},
				{"Refuse", `{}`, "kr"},
				{"Deposit", fmt.Sprintf(`{"wallet":"a%s","amount":1}`, run), "ka"},
				{"Deposit", fmt.Sprintf(`{"wallet":"c%s","amount":3}`, run), "kc"},
			}
			// The gate's COMMIT goes first; the batch's is the second.
			var commits atomic.Int64
			var dropped atomic.Bool
			cut := func() bool { return commits.Add(1) == 2 && dropped.CompareAndSwap(false, true) }
			if drop == "reply" {
				proxy.SetDropReply(cut)
			} else {
				proxy.SetDropQuery(cut)
			}
			results := make([]*orchestrator.Result, len(cmds))
			errs := make([]error, len(cmds))
			var wg sync.WaitGroup
			for i, c := range cmds {
				wg.Go(func() {
					results[i], errs[i] = o.DispatchJSON(ctx, c.name, json.RawMessage(c.payload), as("u"+run, c.key))
				})
				for orchestrator.QueuedForTest(o) < i+1 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			close(release)
			require.NoError(t, <-gateDone)
			wg.Wait()
			require.True(t, dropped.Load(), "a COMMIT was cut")
			for i, c := range cmds {
				if c.name == "Refuse" {
					require.ErrorIs(t, errs[i], errGCRefused, "command %d", i)
					continue
				}
				require.NoError(t, errs[i], "command %d", i)
				require.Len(t, results[i].Events, 1, "command %d", i)
			}
			require.Equal(t, results[0].Events[0].GlobalPosition, results[3].Events[0].GlobalPosition, "the repeated id gets the first's event")
			require.True(t, results[3].Duplicate, "the repeated id replays")
			if drop == "reply" {
				require.Equal(t, 3, results[1].BatchSize, "a, b and c committed in one batch, answered from its marker")
			}
			for _, w := range []string{"a", "b", "c"} {
				v, err := store.StreamVersion(ctx, "wallet-"+w+run)
				require.NoError(t, err)
				require.Equal(t, int64(1), v, "wallet %s applied once", w)
			}
			for i, c := range cmds {
				res, err := o.DispatchJSON(ctx, c.name, json.RawMessage(c.payload), as("u"+run, c.key))
				if c.name == "Refuse" {
					require.ErrorIs(t, err, errGCRefused)
					continue
				}
				require.NoError(t, err)
				require.True(t, res.Duplicate, "command %d replays", i)
				require.Equal(t, results[i].Events[0].GlobalPosition, res.Events[0].GlobalPosition)
			}
		})
	}
}
