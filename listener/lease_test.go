package listener_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

// TestLease: two instances of one subscription; only one drives at a time;
// when it stops, the other takes over from the checkpoint with no gap.
func TestLease(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		ctx := context.Background()
		for i := range 200 {
			if _, err := store.Append(ctx, fmt.Sprintf("l-%d", i%7), eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)}); err != nil {
				t.Fatal(err)
			}
		}
		want := readLog(t, store)
		var (
			mu     sync.Mutex
			got    []eventfold.Event
			active atomic.Int32
			who    [2]atomic.Int64
		)
		newSub := func(i int) *listener.Subscription[*sql.Tx] {
			sub, err := listener.New(store, "leased", func(_ context.Context, ev eventfold.Event) error {
				if n := active.Add(1); n != 1 {
					t.Errorf("%d handlers active at once", n)
				}
				defer active.Add(-1)
				time.Sleep(2 * time.Millisecond)
				mu.Lock()
				got = append(got, ev)
				mu.Unlock()
				who[i].Add(1)
				return nil
			}, &listener.Options{Owner: fmt.Sprintf("instance-%d", i), LeaseTTL: 600 * time.Millisecond, BatchSize: 10,
				PollInterval: 20 * time.Millisecond, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			return sub
		}
		subs := [2]*listener.Subscription[*sql.Tx]{newSub(0), newSub(1)}
		var ctxs [2]context.Context
		var cancels [2]context.CancelFunc
		var wg sync.WaitGroup
		for i := range subs {
			ctxs[i], cancels[i] = context.WithCancel(ctx)
			wg.Go(func() {
				if err := subs[i].Run(ctxs[i]); err != nil {
					t.Errorf("instance %d: %v", i, err)
				}
			})
		}
		waitFor(t, 10*time.Second, "one instance to deliver", func() bool { return who[0].Load()+who[1].Load() > 30 })
		s0, s1 := subs[0].Stats(), subs[1].Stats()
		if s0.Holding == s1.Holding {
			t.Errorf("holding: instance-0 %v, instance-1 %v; want exactly one", s0.Holding, s1.Holding)
		}
		first := 0
		if s1.Holding {
			first = 1
		}
		owner, _ := listener.Checkpoints(ctx, store)
		if len(owner) != 1 || owner[0].Owner != fmt.Sprintf("instance-%d", first) {
			t.Errorf("checkpoints: %+v, want one owned by instance-%d", owner, first)
		}
		cancels[first]() // clean stop: the lease is released, the other takes over
		waitFor(t, 10*time.Second, "the other instance to finish", func() bool {
			pos, _, _ := listener.Checkpoint(ctx, store, "leased")
			return pos == want[len(want)-1].GlobalPosition
		})
		if who[1-first].Load() == 0 {
			t.Errorf("the standby instance never delivered")
		}
		if lag, err := listener.Lag(ctx, store, "leased"); err != nil || lag != 0 {
			t.Errorf("lag = %d, %v; want 0", lag, err)
		}
		cancels[1-first]()
		wg.Wait()
		checkReplayed(t, "leased", got, want)
	})
}

// TestExactlyOnceFailureLeavesNothing: a handler that writes and then fails
// leaves neither its write nor a moved checkpoint; MaxAttempts stops Run
// with a *HandlerError rather than skipping.
func TestExactlyOnceFailureLeavesNothing(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		ctx := context.Background()
		d := store.Dialect()
		if err := store.Driver().Ops().Exec(ctx, `CREATE TABLE eo_rows (pos BIGINT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := store.Append(ctx, "eo", eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)}); err != nil {
				t.Fatal(err)
			}
		}
		log := readLog(t, store)
		bad := log[2].GlobalPosition
		boom := errors.New("boom")
		sub, err := listener.NewTx(store, "eo-fail", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO eo_rows (pos) VALUES (`+placeholders(d, 1)[0]+`)`, ev.GlobalPosition); err != nil {
				return err
			}
			if ev.GlobalPosition == bad {
				return boom
			}
			return nil
		}, &listener.Options{MaxAttempts: 3, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		err = sub.Run(runCtx)
		var he *listener.HandlerError
		if !errors.As(err, &he) || !errors.Is(err, boom) || he.Event.GlobalPosition != bad || he.Attempts != 3 {
			t.Fatalf("Run = %v, want a *HandlerError for position %d after 3 attempts", err, bad)
		}
		pos, _, err := listener.Checkpoint(ctx, store, "eo-fail")
		if err != nil || pos != log[1].GlobalPosition {
			t.Errorf("checkpoint = %d, %v; want %d (just before the failing event)", pos, err, log[1].GlobalPosition)
		}
		var n int
		var maxPos sql.NullInt64
		if err := store.Driver().DB().QueryRowContext(ctx, `SELECT COUNT(*), MAX(pos) FROM eo_rows`).Scan(&n, &maxPos); err != nil {
			t.Fatal(err)
		}
		if n != 2 || maxPos.Int64 != log[1].GlobalPosition {
			t.Errorf("handler rows: %d up to %d; want 2 up to %d (the failing event's write rolled back)", n, maxPos.Int64, log[1].GlobalPosition)
		}
		if st := sub.Stats(); st.Failures < 3 || st.LastError == "" {
			t.Errorf("stats = %+v, want the failures counted", st)
		}
	})
}
