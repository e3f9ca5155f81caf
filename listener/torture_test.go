package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

var errRollback = errors.New("deliberate rollback")

func quietLogger() *slog.Logger {
	if testing.Verbose() && envInt("EVENTFOLD_LISTENER_LOG", 0) > 0 {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestTorture: 8 concurrent writers with random rollbacks, one writer that
// holds its transaction open while the others commit, and four subscribers
// (a Tail, a filtered Tail, an at-least-once subscription restarted twice,
// an exactly-once subscription restarted once whose handler sometimes
// fails): each must receive exactly the committed log, in order.
// EVENTFOLD_TORTURE_EVENTS sets the event count (default 5000).
func TestTorture(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) { runTorture(t, store) })
}

// TestTorturePgx runs the torture test through pgx.Tx on PostgreSQL, with
// a pgxdriver.Listener besides the in-process wake-ups.
func TestTorturePgx(t *testing.T) {
	store, _ := pgxStore(t)
	runTorture[pgx.Tx](t, store)
}

func runTorture[TTx any](t *testing.T, store *eventfold.Store[TTx]) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := store.Dialect()
	total := int64(envInt("EVENTFOLD_TORTURE_EVENTS", 5000))

	sig := listener.NewSignal()
	notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
	var subs sync.WaitGroup
	subs.Go(func() { _ = notifier.Run(ctx) })
	opts := func() *listener.Options {
		return &listener.Options{Wakeup: sig, PollInterval: 200 * time.Millisecond, BatchSize: 97,
			LeaseTTL: 5 * time.Second, RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: quietLogger()}
	}
	if err := store.Driver().Ops().Exec(ctx, `CREATE TABLE torture_seen (pos BIGINT PRIMARY KEY, event_id VARCHAR(64) NOT NULL)`); err != nil {
		t.Fatalf("create table: %v", err)
	}
	insertSeen := `INSERT INTO torture_seen (pos, event_id) VALUES (` + strings.Join(placeholders(d, 2), ", ") + `)`

	// Subscribers.
	var mu sync.Mutex
	var tailGot, filteredGot, aloGot []eventfold.Event
	var tailThrough atomic.Int64
	filter := listener.Filter{StreamPrefixes: []string{"s-3-"}, Streams: []string{"shared-1"}, Types: []string{"B"}}
	subs.Go(func() {
		err := listener.Tail(ctx, store, 0, opts(), func(_ context.Context, b listener.Batch) error {
			mu.Lock()
			tailGot = append(tailGot, b.Events...)
			mu.Unlock()
			tailThrough.Store(b.Through)
			return nil
		})
		if err != nil {
			t.Errorf("tail: %v", err)
		}
	})
	subs.Go(func() {
		o := opts()
		o.Filter = filter
		err := listener.Tail(ctx, store, 0, o, func(_ context.Context, b listener.Batch) error {
			mu.Lock()
			filteredGot = append(filteredGot, b.Events...)
			mu.Unlock()
			return nil
		})
		if err != nil {
			t.Errorf("filtered tail: %v", err)
		}
	})
	// At-least-once, flaky handler, stopped and restarted twice.
	var aloLen atomic.Int64
	subs.Go(func() {
		for round := 0; ctx.Err() == nil; round++ {
			sub, err := listener.New(store, "alo", func(_ context.Context, ev eventfold.Event) error {
				if rand.IntN(40) == 0 {
					return errors.New("flaky side effect")
				}
				mu.Lock()
				aloGot = append(aloGot, ev)
				mu.Unlock()
				aloLen.Add(1)
				return nil
			}, opts())
			if err != nil {
				t.Errorf("new alo: %v", err)
				return
			}
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- sub.Run(rctx) }()
			if round < 2 {
				for aloLen.Load() < int64(round+1)*total/3 && ctx.Err() == nil {
					time.Sleep(5 * time.Millisecond)
				}
			} else {
				<-ctx.Done()
			}
			rcancel()
			if err := <-done; err != nil {
				t.Errorf("alo run: %v", err)
			}
		}
	})
	// Exactly-once: writes a row per event in the checkpoint's transaction;
	// fails (after writing) on some events the first time.
	var failedOnce sync.Map
	var eoFailures atomic.Int64
	subs.Go(func() {
		for round := 0; ctx.Err() == nil; round++ {
			sub, err := listener.NewTx(store, "eo", func(ctx context.Context, tx TTx, ev eventfold.Event) error {
				if err := store.Driver().OpsTx(tx).Exec(ctx, insertSeen, ev.GlobalPosition, ev.ID); err != nil {
					return err
				}
				if ev.StreamVersion%17 == 3 {
					if _, loaded := failedOnce.LoadOrStore(ev.ID, true); !loaded {
						eoFailures.Add(1)
						return errors.New("reducer failed after writing")
					}
				}
				return nil
			}, opts())
			if err != nil {
				t.Errorf("new eo: %v", err)
				return
			}
			rctx, rcancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- sub.Run(rctx) }()
			if round == 0 {
				for ctx.Err() == nil {
					if pos, _, _ := listener.Checkpoint(ctx, store, "eo"); pos > 0 {
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
			} else {
				<-ctx.Done()
			}
			rcancel()
			if err := <-done; err != nil {
				t.Errorf("eo run: %v", err)
			}
		}
	})

	// Writers.
	var (
		wmu       sync.Mutex
		committed = map[string]bool{}
		rolled    = map[string]bool{}
		written   atomic.Int64
		writers   sync.WaitGroup
	)
	types := []string{"A", "B", "C"}
	write := func(rng *rand.Rand, w int) {
		stream := fmt.Sprintf("s-%d-%d", w, rng.IntN(5))
		if rng.IntN(5) == 0 {
			stream = fmt.Sprintf("shared-%d", rng.IntN(3))
		}
		n := 1 + rng.IntN(4)
		evs := make([]eventfold.EventData, n)
		for i := range evs {
			evs[i] = eventfold.EventData{Type: types[rng.IntN(3)], Data: data(map[string]int{"w": w, "i": i})}
		}
		rollback := rng.IntN(7) == 0
		var out []eventfold.Event
		err := store.InTx(ctx, func(tx TTx) (err error) {
			out, err = store.AppendTx(ctx, tx, stream, eventfold.Any, evs...)
			if err == nil && rollback {
				err = errRollback
			}
			return err
		})
		wmu.Lock()
		defer wmu.Unlock()
		switch {
		case err == nil:
			for _, e := range out {
				committed[e.ID] = true
			}
			written.Add(int64(n))
			notifier.NotifyEvents(out)
		case errors.Is(err, errRollback) || errors.Is(err, eventfold.ErrTransient):
			for _, e := range out {
				rolled[e.ID] = true
			}
		default:
			t.Errorf("writer %d: %v", w, err)
		}
	}
	for w := range 8 {
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for written.Load() < total && ctx.Err() == nil && !t.Failed() {
				write(rng, w)
			}
		})
	}
	// The holder: appends, then keeps its transaction open while the others
	// commit later positions (on PostgreSQL its position is lower than
	// theirs; elsewhere it blocks them, which is how those dialects stay
	// gap-free).
	writers.Go(func() {
		for i := range 3 {
			time.Sleep(100 * time.Millisecond)
			drv := store.Driver()
			tx, err := drv.Begin(ctx)
			if err != nil {
				t.Errorf("holder begin: %v", err)
				return
			}
			out, err := store.AppendTx(ctx, tx, "holder", eventfold.Any, eventfold.EventData{Type: "A", Data: data(i)})
			if err != nil {
				_ = drv.Rollback(ctx, tx)
				t.Errorf("holder append: %v", err)
				return
			}
			time.Sleep(300 * time.Millisecond)
			if err := drv.Commit(ctx, tx); err != nil {
				t.Errorf("holder commit: %v", err)
				return
			}
			wmu.Lock()
			committed[out[0].ID] = true
			wmu.Unlock()
			notifier.NotifyEvents(out)
		}
	})
	writers.Wait()
	if t.Failed() {
		return
	}
	want := readLog(t, store)
	last := want[len(want)-1].GlobalPosition
	t.Logf("%s: %d events committed, %d rolled back; exactly-once handler failed %d times so far", d, len(committed), len(rolled), eoFailures.Load())

	// The log holds exactly the committed events.
	if len(want) != len(committed) {
		t.Errorf("log has %d events, writers committed %d", len(want), len(committed))
	}
	for _, e := range want {
		if !committed[e.ID] {
			t.Errorf("log holds event %s that no writer committed (rolled back: %v)", e.ID, rolled[e.ID])
			break
		}
	}

	waitFor(t, 120*time.Second, "subscribers to catch up", func() bool {
		eo, _, _ := listener.Checkpoint(ctx, store, "eo")
		alo, _, _ := listener.Checkpoint(ctx, store, "alo")
		return tailThrough.Load() == last && eo == last && alo == last
	})
	cancel()
	subs.Wait()

	var wantFiltered []eventfold.Event
	for _, e := range want {
		if filter.Match(e) {
			wantFiltered = append(wantFiltered, e)
		}
	}
	checkExact(t, "tail", tailGot, want)
	checkExact(t, "filtered tail", filteredGot, wantFiltered)
	if len(wantFiltered) == 0 {
		t.Errorf("filter matched nothing: the test does not test it")
	}
	replays := checkReplayed(t, "at-least-once", aloGot, want)
	t.Logf("at-least-once: %d redeliveries over 2 restarts", replays)

	rows, err := store.Driver().DB().QueryContext(context.Background(), `SELECT pos, event_id FROM torture_seen ORDER BY pos`)
	if err != nil {
		t.Fatalf("read torture_seen: %v", err)
	}
	defer rows.Close()
	var seen []eventfold.Event
	for rows.Next() {
		var e eventfold.Event
		if err := rows.Scan(&e.GlobalPosition, &e.ID); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, e)
	}
	checkExact(t, "exactly-once table", seen, want)
	if eoFailures.Load() == 0 {
		t.Errorf("the exactly-once handler never failed: the test does not test rollback")
	}
}
