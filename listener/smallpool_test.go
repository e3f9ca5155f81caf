package listener_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// cappedStore opens a fresh migrated database of dialect d through
// sqldriver.Open with max_open_conns=n.
func cappedStore(t *testing.T, d eventfold.Dialect, n int) *eventfold.Store[*sql.Tx] {
	t.Helper()
	dsn := testdb.DSN(t, d)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	drv, err := sqldriver.Open(context.Background(), fmt.Sprintf("%s%smax_open_conns=%d", dsn, sep, n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drv.Close() })
	if got := drv.DB().Stats().MaxOpenConnections; got != n {
		t.Fatalf("pool cap %d, want %d", got, n)
	}
	return eventfold.New(drv, nil)
}

// TestSubscriptionsOnSmallPools: every kind of durable subscription (one
// event at a time, exactly-once in the checkpoint's transaction, batches,
// a pipeline), leased by an owner, with a Notifier feeding its wake-up
// signal, delivers the whole log on a pool of one connection and of two.
// Each keeps at most one connection while it waits for another: a hang
// would show as the 60 s wait failing.
func TestSubscriptionsOnSmallPools(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				store := cappedStore(t, d, n)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				sig := listener.NewSignal()
				notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig, Logger: quietLogger()})
				go notifier.Run(ctx)
				const events = 40
				var counts [4]atomic.Int64
				opts := func(i int) *listener.Options {
					return &listener.Options{Owner: fmt.Sprintf("owner-%d", i), LeaseTTL: 5 * time.Second, BatchSize: 7,
						PollInterval: 20 * time.Millisecond, Wakeup: sig, Logger: quietLogger()}
				}
				one, err := listener.New(store, "one", func(context.Context, eventfold.Event) error { counts[0].Add(1); return nil }, opts(0))
				if err != nil {
					t.Fatal(err)
				}
				exact, err := listener.NewTx(store, "exact", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
					// Reads go through tx: the store would want a second connection.
					if _, err := store.OpsTx(tx).ReadStream(ctx, ev.StreamID, 0, 1, false); err != nil {
						return err
					}
					counts[1].Add(1)
					return nil
				}, opts(1))
				if err != nil {
					t.Fatal(err)
				}
				batch, err := listener.NewBatch(store, "batch", func(_ context.Context, b listener.Batch) error { counts[2].Add(int64(len(b.Events))); return nil }, opts(2))
				if err != nil {
					t.Fatal(err)
				}
				pipe, err := listener.NewPipeline(store, "pipe", func(_ context.Context, b listener.Batch) (func() error, error) {
					return func() error { counts[3].Add(int64(len(b.Events))); return nil }, nil
				}, 3, opts(3))
				if err != nil {
					t.Fatal(err)
				}
				errs := make(chan error, 4)
				for _, s := range []*listener.Subscription[*sql.Tx]{one, exact, batch, pipe} {
					go func() { errs <- s.Run(ctx) }()
				}
				for i := range events {
					evs, err := store.Append(ctx, fmt.Sprintf("s-%d", i%3), eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)})
					if err != nil {
						t.Fatal(err)
					}
					notifier.Notify(evs[len(evs)-1].GlobalPosition)
				}
				waitFor(t, 60*time.Second, "every subscription to deliver the log", func() bool {
					for i := range counts {
						if counts[i].Load() < events {
							return false
						}
					}
					return true
				})
				cancel()
				for range 4 {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
				for i := range counts {
					if got := counts[i].Load(); got != events {
						t.Errorf("subscription %d delivered %d events, want %d", i, got, events)
					}
				}
			})
		}
	})
}
