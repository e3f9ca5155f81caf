package listener_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestPGListenerReconnect: followers that never poll (hour-long interval)
// are woken only by NOTIFY; after the LISTEN connection is killed with
// pg_terminate_backend, the listener reconnects, and events committed while
// it was down are delivered too, with no gap.
func TestPGListenerReconnect(t *testing.T) {
	store, dsn := pgxStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := listener.NewSignal()
	// The notifier has no Signal of its own: wake-ups must go through the
	// database.
	n := listener.NewNotifier(store, nil)
	l := &pgxdriver.Listener{ConnString: dsn, Signal: sig, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quietLogger()}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = n.Run(ctx) })
	wg.Go(func() { _ = l.Run(ctx) })
	waitFor(t, 10*time.Second, "LISTEN connection", l.Connected)

	var mu sync.Mutex
	var got []eventfold.Event
	wg.Go(func() {
		_ = listener.Tail(ctx, store, 0, &listener.Options{Wakeup: sig, PollInterval: time.Hour, Logger: quietLogger()},
			func(_ context.Context, b listener.Batch) error {
				mu.Lock()
				got = append(got, b.Events...)
				mu.Unlock()
				return nil
			})
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	appendOne := func(i int, notify bool) {
		out, err := store.Append(ctx, "pg-listen", eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)})
		if err != nil {
			t.Fatal(err)
		}
		if notify {
			n.NotifyEvents(out)
		}
	}
	time.Sleep(50 * time.Millisecond) // let the tail do its first (empty) read
	appendOne(1, true)
	waitFor(t, 10*time.Second, "delivery woken by NOTIFY", func() bool { return count() == 1 })

	pid := l.BackendPID()
	var killed bool
	row := store.Driver().DB().QueryRowContext(ctx, `SELECT pg_terminate_backend($1)`, int32(pid))
	if err := row.Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, killed, err)
	}
	// Committed while the listener is down, with no notification at all:
	// the reconnection's wake-up (listen, then catch up) must deliver it.
	appendOne(2, false)
	waitFor(t, 10*time.Second, "reconnection", func() bool { return l.Connected() && l.BackendPID() != pid })
	waitFor(t, 10*time.Second, "catch-up after reconnection", func() bool { return count() == 2 })
	appendOne(3, true)
	waitFor(t, 10*time.Second, "delivery after reconnection", func() bool { return count() == 3 })
	cancel()
	wg.Wait()
	checkExact(t, "listen tail", got, readLog(t, store))
	if l.Received() < 2 {
		t.Errorf("listener received %d notifications, want >= 2", l.Received())
	}
}

// TestDatabaseConnectionsKilled: every connection a durable subscription
// and a pgxdriver.Listener use is terminated mid-stream (as in a failover or a
// database restart); both reconnect and the subscription finishes with no
// gap.
func TestDatabaseConnectionsKilled(t *testing.T) {
	store, dsn := pgxStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := listener.NewSignal()
	l := &pgxdriver.Listener{ConnString: dsn, Signal: sig, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quietLogger()}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = l.Run(ctx) })
	appendBatch := func(k int) {
		for i := range 20 {
			if _, err := store.Append(ctx, "dbk", eventfold.Any, eventfold.EventData{Type: "E", Data: data(k*100 + i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendBatch(0)
	var mu sync.Mutex
	var got []eventfold.Event
	sub, err := listener.New(store, "survivor", func(_ context.Context, ev eventfold.Event) error {
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
		return nil
	}, &listener.Options{Wakeup: sig, BatchSize: 5, PollInterval: 50 * time.Millisecond, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := sub.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "some deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 5 })
	waitFor(t, 10*time.Second, "LISTEN connection", l.Connected)
	oldPID := l.BackendPID()
	var killed int
	err = store.Driver().DB().QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&killed)
	if err != nil || killed == 0 {
		t.Fatalf("terminated %d backends: %v", killed, err)
	}
	appendBatch(1)
	last := readLog(t, store)
	waitFor(t, 30*time.Second, "the subscription to finish", func() bool {
		p, _, _ := listener.Checkpoint(ctx, store, "survivor")
		return p == last[len(last)-1].GlobalPosition
	})
	waitFor(t, 10*time.Second, "LISTEN reconnection", func() bool { return l.Connected() && l.BackendPID() != oldPID })
	cancel()
	wg.Wait()
	checkReplayed(t, "survivor", got, last)
	if st := sub.Stats(); st.Failures == 0 {
		t.Logf("no failure recorded (the kill may have hit idle connections only)")
	}
}
