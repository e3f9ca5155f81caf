package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack4StrayAnnouncementKeepsHeldBackReReads: one position announced
// that this log has not reached (another log's Notifier feeding the same
// Signal, or `NOTIFY eventfold_events, '9223372036854775807'` from psql by
// anyone who can connect) must not turn off the held-back re-reads for
// good. After it, events held back by a running append and released
// without a further wake-up must still reach the follower well before its
// poll interval (an hour here).
//
// Finding (attack4): the Signal keeps the highest position ever announced
// (signal.go next: max over generations) and the reader never takes an
// announcement at or below r.taken again (tail.go account), so after one
// stray announcement every later announcement is ignored and the held-back
// events wait the whole poll interval.
func TestAttack4StrayAnnouncementKeepsHeldBackReReads(t *testing.T) {
	for _, d := range testdb.Dialects() {
		if d == eventfold.SQLite {
			continue
		}
		stray := []string{"none", "announce-maxint", "announce-other-log"} // none: the control, passes
		if d == eventfold.Postgres {
			stray = append(stray, "notify-maxint")
		}
		for _, s := range stray {
			t.Run(fmt.Sprintf("%s/%s", d, s), func(t *testing.T) { strayCase(t, d, s) })
		}
	}
}

func strayCase(t *testing.T, d eventfold.Dialect, stray string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := testdb.DSN(t, d)
	drv, err := sqldriver.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer drv.Close()
	store := eventfold.New(drv, nil)
	sig := listener.NewSignal()
	notifier := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig, Logger: quietLogger()})
	go notifier.Run(ctx) //nolint:errcheck // ends with ctx
	if stray == "notify-maxint" {
		l := &pgxdriver.Listener{ConnString: dsn, Signal: sig, Logger: quietLogger()}
		go l.Run(ctx) //nolint:errcheck // ends with ctx
		waitFor(t, 10*time.Second, "the LISTEN connection", l.Connected)
	}

	var mu sync.Mutex
	var got []int64
	have := func(p int64) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == p {
				return true
			}
		}
		return false
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		err := listener.Tail(ctx, store, 0, &listener.Options{Wakeup: sig, PollInterval: time.Hour, Logger: quietLogger()},
			func(_ context.Context, b listener.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range b.Events {
					got = append(got, e.GlobalPosition)
				}
				return nil
			})
		if err != nil && ctx.Err() == nil {
			t.Errorf("tail: %v", err)
		}
	})
	appendOne := func(stream string) []eventfold.Event {
		t.Helper()
		evs, err := store.Append(ctx, stream, eventfold.Any, eventfold.EventData{Type: "E", Data: data(stream)})
		if err != nil {
			t.Fatalf("append to %s: %v", stream, err)
		}
		return evs
	}
	first := appendOne("stray-first")
	notifier.NotifyEvents(first)
	waitFor(t, 30*time.Second, "the first event", func() bool { return have(first[0].GlobalPosition) })

	// The stray announcement.
	switch stray {
	case "announce-maxint":
		sig.Announce(math.MaxInt64)
	case "announce-other-log":
		sig.Announce(first[0].GlobalPosition + 1<<40)
	case "notify-maxint":
		if _, err := drv.DB().ExecContext(ctx, `NOTIFY eventfold_events, '9223372036854775807'`); err != nil {
			t.Fatalf("notify: %v", err)
		}
	}
	// Its re-reads end after about a second (TestForeignAnnouncementStopsReReads).
	time.Sleep(3 * time.Second)

	before := appendOne("stray-before")
	held, release, ended := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	errRelease := errors.New("released")
	go func() {
		ended <- store.InTx(ctx, func(tx *sql.Tx) error {
			_, err := store.AppendTx(ctx, tx, "stray-holder", eventfold.Any, eventfold.EventData{Type: "E", Data: data("holder")})
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
	after := appendOne("stray-after")
	if h, err := store.Head(ctx); err != nil || h >= after[0].GlobalPosition {
		t.Fatalf("head %d (%v) with the holder running: the event at %d is not held back", h, err, after[0].GlobalPosition)
	}
	notifier.NotifyEvents(after)
	waitFor(t, 30*time.Second, "the event before the holder", func() bool { return have(before[0].GlobalPosition) })
	close(release)
	if err := <-ended; !errors.Is(err, errRelease) {
		t.Fatalf("holder: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !have(after[0].GlobalPosition) {
		if time.Now().After(deadline) {
			t.Fatalf("after a stray announcement (%s), the event at %d held back and released was not delivered in 20 s (poll interval 1h): the re-reads of held-back events are off for good", stray, after[0].GlobalPosition)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
