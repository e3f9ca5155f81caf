package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
)

// heldBackFollowers records what each follower received.
type heldBackFollowers struct {
	mu  sync.Mutex
	got map[string][]int64
}

func (f *heldBackFollowers) add(name string, evs ...eventfold.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range evs {
		f.got[name] = append(f.got[name], e.GlobalPosition)
	}
}

// have reports whether every follower received pos, and who did not.
func (f *heldBackFollowers) have(names []string, pos int64) (bool, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var missing []string
	for _, n := range names {
		found := false
		for _, p := range f.got[n] {
			found = found || p == pos
		}
		if !found {
			missing = append(missing, n)
		}
	}
	return len(missing) == 0, missing
}

// aloneLog is a Log whose dynamic type cannot be a map key: the shared
// reader refuses it, so a Tail on it reads alone.
type aloneLog struct {
	eventfold.Log
	_ []int
}

// TestHeldBackEventsFollowWithoutWakeup: events that committed while a
// running transaction held them back (PostgreSQL: a transaction with an
// xid holds the snapshot horizon; MySQL/MariaDB: an append still running
// with a lower position) are delivered when that transaction ends, with no
// further wake-up and a poll interval of an hour. The wake-up's read
// returned part of what committed (the event before the holder); the
// follower used to return it and then wait for the next wake-up or poll,
// because only a wake-up whose read found nothing was followed by quick
// re-reads (CI: TestFollowersShareReads/postgres, held back by another test
// package's transaction). For Tails and Subscriptions, sharing their reads
// and alone (batch and pipeline subscriptions too), woken by a Broadcast (no position), by a Notifier's Announce,
// and on PostgreSQL by NOTIFY through a pgxdriver.Listener.
func TestHeldBackEventsFollowWithoutWakeup(t *testing.T) {
	for _, d := range testdb.Dialects() {
		if d == eventfold.SQLite {
			continue // one writer: nothing is ever held back
		}
		wakes := []string{"broadcast", "announce"}
		if d == eventfold.Postgres {
			wakes = append(wakes, "notify")
		}
		for _, mode := range []string{"shared", "alone"} {
			for _, wake := range wakes {
				t.Run(fmt.Sprintf("%s/%s/%s", d, mode, wake), func(t *testing.T) {
					if mode == "alone" {
						defer listener.ReadAlone()()
					}
					heldBackCase(t, d, mode, wake)
				})
			}
		}
	}
}

func heldBackCase(t *testing.T, d eventfold.Dialect, mode, wake string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := testdb.DSN(t, d)
	drv, err := sqldriver.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer drv.Close()
	store := eventfold.New(drv, nil)
	if !store.Ops().Capabilities().HeadLags {
		t.Fatalf("%s: the test needs a log whose head can lag", d)
	}
	log := &countingLog{Log: store}

	sig := listener.NewSignal()
	var notifier *listener.Notifier
	switch wake {
	case "announce":
		notifier = listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig, Logger: quietLogger()})
	case "notify":
		// Another process's commits: only NOTIFY wakes this one.
		notifier = listener.NewNotifier(store, &listener.NotifierOptions{Logger: quietLogger()})
		l := &pgxdriver.Listener{ConnString: dsn, Signal: sig, Logger: quietLogger()}
		go l.Run(ctx) //nolint:errcheck // ends with ctx
		waitFor(t, 10*time.Second, "the LISTEN connection", l.Connected)
	}
	if notifier != nil {
		go notifier.Run(ctx) //nolint:errcheck // ends with ctx
	}
	wakeUp := func(evs []eventfold.Event) {
		if notifier != nil {
			notifier.NotifyEvents(evs)
		} else {
			sig.Broadcast()
		}
	}

	opts := func() *listener.Options {
		return &listener.Options{Wakeup: sig, PollInterval: time.Hour, Logger: quietLogger()}
	}
	rec := &heldBackFollowers{got: map[string][]int64{}}
	var names []string
	var wg sync.WaitGroup
	tail := func(name string, l eventfold.Log) {
		names = append(names, name)
		wg.Go(func() {
			err := listener.Tail(ctx, l, 0, opts(), func(_ context.Context, b listener.Batch) error {
				rec.add(name, b.Events...)
				return nil
			})
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	sub := func(name string, mk func(h listener.Handler) (*listener.Subscription[*sql.Tx], error)) {
		names = append(names, name)
		s, err := mk(func(_ context.Context, ev eventfold.Event) error {
			rec.add(name, ev)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wg.Go(func() {
			if err := s.Run(ctx); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	if mode == "shared" {
		tail("tail-1", log)
		tail("tail-2", log)
	} else {
		tail("tail", aloneLog{Log: log})
	}
	// The subscriptions read store, not log: in shared mode they share with
	// the tails only among themselves (the shared reader is per Log value).
	sub("subscription", func(h listener.Handler) (*listener.Subscription[*sql.Tx], error) {
		return listener.New(store, "held-at-least-once", h, opts())
	})
	sub("batch-subscription", func(h listener.Handler) (*listener.Subscription[*sql.Tx], error) {
		return listener.NewBatch(store, "held-batch", func(ctx context.Context, b listener.Batch) error {
			for _, ev := range b.Events {
				if err := h(ctx, ev); err != nil {
					return err
				}
			}
			return nil
		}, opts())
	})
	sub("pipeline-subscription", func(h listener.Handler) (*listener.Subscription[*sql.Tx], error) {
		return listener.NewPipeline(store, "held-pipeline", func(ctx context.Context, b listener.Batch) (func() error, error) {
			for _, ev := range b.Events {
				if err := h(ctx, ev); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}, 2, opts())
	})
	defer wg.Wait()
	defer cancel()

	appendOne := func(stream string) []eventfold.Event {
		t.Helper()
		evs, err := store.Append(ctx, stream, eventfold.Any, eventfold.EventData{Type: "E", Data: data(stream)})
		if err != nil {
			t.Fatalf("append to %s: %v", stream, err)
		}
		return evs
	}
	// Every follower running and caught up.
	first := appendOne("held-first")
	wakeUp(first)
	waitFor(t, 30*time.Second, "every follower to receive the first event", func() bool {
		ok, _ := rec.have(names, first[0].GlobalPosition)
		return ok
	})

	before := appendOne("held-before")
	// The holder: an append left running, in a transaction of its own.
	held, release, ended := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	errRelease := errors.New("released")
	go func() {
		ended <- store.InTx(ctx, func(tx *sql.Tx) error {
			_, err := store.AppendTx(ctx, tx, "held-holder", eventfold.Any, eventfold.EventData{Type: "E", Data: data("holder")})
			held <- err
			if err != nil {
				return err
			}
			<-release
			return errRelease
		})
	}()
	if err := <-held; err != nil {
		t.Fatalf("holder's append: %v", err)
	}
	after := appendOne("held-after")
	if h, err := store.Head(ctx); err != nil || h >= after[0].GlobalPosition {
		t.Fatalf("head %d (%v) with the holder running: the event at %d is not held back", h, err, after[0].GlobalPosition)
	}
	wakeUp(after)
	// The wake-up's read returns the part before the holder.
	waitFor(t, 30*time.Second, "every follower to receive the event before the holder", func() bool {
		ok, _ := rec.have(names, before[0].GlobalPosition)
		return ok
	})
	reads := log.reads.Load()
	close(release)
	if err := <-ended; !errors.Is(err, errRelease) {
		t.Fatalf("holder: %v", err)
	}
	// No wake-up from here on: the rollback announces nothing.
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, missing := rec.have(names, after[0].GlobalPosition)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			h, _ := store.Head(ctx)
			t.Fatalf("20s after the holder ended, %v still lack the event at %d that it held back (head %d; reads by the tails since the partial delivery: %d)",
				missing, after[0].GlobalPosition, h, log.reads.Load()-reads)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForeignAnnouncementStopsReReads: a position announced that this log
// will not reach (a Signal fed by another log's Notifier, or a stray
// NOTIFY payload) makes followers re-read for about a second, then check
// the log's last position once and go back to waiting, instead of
// re-reading every second for ever.
func TestForeignAnnouncementStopsReReads(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		log := &countingLog{Log: store}
		sig := listener.NewSignal()
		got, wait := followAll(ctx, t, log, 2, 0, func(int) *listener.Options {
			return &listener.Options{Wakeup: sig, PollInterval: time.Hour, Logger: quietLogger()}
		}, nil)
		defer wait()
		defer cancel()
		evs, err := store.Append(ctx, "foreign", eventfold.Any, eventfold.EventData{Type: "E", Data: data(1)})
		if err != nil {
			t.Fatalf("append: %v", err)
		}
		sig.Announce(evs[0].GlobalPosition)
		waitFor(t, 30*time.Second, "both followers", func() bool { return len(got(0)) == 1 && len(got(1)) == 1 })
		time.Sleep(200 * time.Millisecond)
		base := log.reads.Load()
		sig.Announce(evs[0].GlobalPosition + 1<<40)
		time.Sleep(3 * time.Second)
		mid := log.reads.Load()
		time.Sleep(2 * time.Second)
		end := log.reads.Load()
		t.Logf("reads after the foreign announcement: %d in the first 3s, %d in the next 2s", mid-base, end-mid)
		if store.Ops().Capabilities().HeadLags {
			// The wake-up's read, then about soonMax+1 re-reads (shared),
			// twice over for followers out of step.
			if mid-base > 2*12 || end != mid {
				t.Errorf("%d reads in the 3s after a foreign announcement, %d in the 2s after: want at most 24, then none", mid-base, end-mid)
			}
		} else if mid-base > 1 || end != mid {
			// Nothing is ever held back here: an announcement is only a
			// wake-up.
			t.Errorf("%d reads in the 3s after an announcement, %d after: want at most 1, then none", mid-base, end-mid)
		}
	})
}
