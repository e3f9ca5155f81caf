package pgxdriver_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

type smallInc struct {
	Key string `json:"key"`
}

// TestSmallPools: a pgx store whose pool has pool_max_conns=1 or 2 (below
// the 4 group-commit committers) migrates (goose over the pool's
// database/sql view, its advisory lock on the connection it migrates on),
// dispatches commands with ids from 8 goroutines with group commit (the
// idempotency record and the commit marker travel with COMMIT), and a
// leased exactly-once subscription, woken by a LISTEN connection of its
// own (outside the pool), delivers every event. The 2-minute context
// turns a hang into a failure.
func TestSmallPools(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dsn := testdb.EmptyDSN(t, eventfold.Postgres)
			sep := "?"
			if strings.Contains(dsn, "?") {
				sep = "&"
			}
			drv, err := pgxdriver.Open(ctx, fmt.Sprintf("%s%spool_max_conns=%d", dsn, sep, n))
			require.NoError(t, err)
			defer drv.Close()
			require.Equal(t, int32(n), drv.Pool().Config().MaxConns)
			store := eventfold.New(drv, nil)
			require.NoError(t, store.Migrate(ctx))

			sig := listener.NewSignal()
			pl := &pgxdriver.Listener{ConnString: dsn, Signal: sig}
			lctx, stopListen := context.WithCancel(ctx)
			defer stopListen()
			go func() { _ = pl.Run(lctx) }()
			notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
			go notifier.Run(lctx)

			var delivered atomic.Int64
			// NOTIFY only (an hour's poll): a wake-up whose read finds
			// only part of what committed (another database's transaction
			// holds the read horizon back) re-reads until it has it; this
			// test once delivered 10 of 32 events before that was fixed.
			sub, err := listener.NewTx(store, "small", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event) error {
				if _, err := store.OpsTx(tx).ReadStream(ctx, ev.StreamID, 0, 1, false); err != nil {
					return err
				}
				delivered.Add(1)
				return nil
			}, &listener.Options{Owner: "me", LeaseTTL: 5 * time.Second, PollInterval: time.Hour, Wakeup: sig})
			require.NoError(t, err)
			subDone := make(chan error, 1)
			go func() { subDone <- sub.Run(lctx) }()

			o := orchestrator.New(store, &orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{},
				AfterCommit: func(_ context.Context, evs []eventfold.Event) { notifier.Notify(evs[len(evs)-1].GlobalPosition) }})
			orchestrator.Handle(o, "Inc", func(ctx context.Context, tx pgx.Tx, c smallInc) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "inc-" + c.Key, Expected: eventfold.Any, Type: "Inced", Data: c}}, nil
			})
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 4 {
						cmd := orchestrator.Command{Name: "Inc", Envelope: orchestrator.Envelope{ID: fmt.Sprintf("%d-%d", g, i)}, Payload: smallInc{Key: fmt.Sprint(g % 2)}}
						for range 2 {
							if _, err := o.Dispatch(ctx, cmd); err != nil {
								t.Errorf("dispatch %s: %v", cmd.Envelope.ID, err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			for !t.Failed() && delivered.Load() < 32 {
				select {
				case <-ctx.Done():
					t.Fatalf("delivered %d of 32 events: %v", delivered.Load(), ctx.Err())
				case <-time.After(10 * time.Millisecond):
				}
			}
			stopListen()
			require.NoError(t, <-subDone)
			require.Equal(t, int64(32), delivered.Load(), "each command once")
		})
	}
}

// TestListenerTakesThePoolsDSN: a Listener given the DSN its program opens
// the pool with, pool_max_conns (pgxpool's) or max_open_conns
// (sqldriver.Open's) included, passed the parameter to PostgreSQL, which
// refused every connection ("unrecognized configuration parameter"): the
// Listener reconnected for ever and never listened. It connects and
// receives a notification.
func TestListenerTakesThePoolsDSN(t *testing.T) {
	base := testdb.DSN(t, eventfold.Postgres)
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	for _, param := range []string{"pool_max_conns=2", "max_open_conns=2"} {
		t.Run(param, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			sig := listener.NewSignal()
			pl := &pgxdriver.Listener{ConnString: base + sep + param, Signal: sig, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}
			lctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- pl.Run(lctx) }()
			for !pl.Connected() {
				select {
				case <-ctx.Done():
					t.Fatalf("the Listener never connected: %v", ctx.Err())
				case <-time.After(10 * time.Millisecond):
				}
			}
			conn, err := pgx.Connect(ctx, base)
			require.NoError(t, err)
			defer conn.Close(ctx)
			for pl.Received() == 0 {
				_, err := conn.Exec(ctx, `SELECT pg_notify('eventfold_events', '42')`)
				require.NoError(t, err)
				select {
				case <-ctx.Done():
					t.Fatalf("no notification received: %v", ctx.Err())
				case <-time.After(10 * time.Millisecond):
				}
			}
			require.Equal(t, int64(42), pl.LastPosition())
			stop()
			require.NoError(t, <-done)
		})
	}
}
