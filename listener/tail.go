package listener

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Batch is what a Tail hands to its callback: the events of one read that
// pass the filter, and the position the read reached.
type Batch struct {
	// Events are the matching events, in global order. May be empty when
	// every event read was filtered out.
	Events []eventfold.Event
	// Through is the position of the last event read (matching or not):
	// continue after it.
	Through int64
}

// Tail follows the log from after position after (0: from the beginning;
// StartAtHead: from the current head), handing fn each batch read, forever:
// it catches up, then waits for wake-ups or polls. Nothing is persisted;
// use a Subscription for a durable checkpoint.
//
// Database errors are logged and retried with backoff, so Tail rides out a
// database restart. Tail returns nil when ctx ends, fn's error when fn fails,
// and an error matching eventfold.ErrArchived when it must read events that
// were archived.
func Tail(ctx context.Context, store eventfold.Log, after int64, opts *Options, fn func(ctx context.Context, b Batch) error) error {
	o := opts.withDefaults()
	pos := after
	if after == StartAtHead {
		var err error
		if pos, err = headWithRetry(ctx, store, &o); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	} else if after < 0 {
		return &eventfold.ValidationError{Field: "tail start", Reason: fmt.Sprintf("position %d is negative", after)}
	}
	r := reader{store: store, o: &o}
	for {
		evs, err := r.next(ctx, pos, o.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		b := Batch{Through: evs[len(evs)-1].GlobalPosition}
		for _, ev := range evs {
			if o.Filter.Match(ev) {
				b.Events = append(b.Events, ev)
			}
		}
		if err := fn(ctx, b); err != nil {
			return err
		}
		pos = b.Through
	}
}

// reader reads the next non-empty page after a position, waiting for
// wake-ups or the poll interval while the log has nothing new, and retrying
// database errors with backoff.
type reader struct {
	store eventfold.Log
	o     *Options
	// caughtUp is called with true each time a read comes back empty.
	caughtUp func(bool)
}

// next returns at least one event after pos, or an error: ctx's, or one a
// retry cannot cure (archived events).
func (r *reader) next(ctx context.Context, pos int64, limit int) ([]eventfold.Event, error) {
	fails, woken := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Take the wake-up channel before reading: a commit announced
		// between the read and the wait still wakes us.
		wake := r.o.Wakeup.Wait()
		evs, err := r.store.ReadAll(ctx, eventfold.ReadAllOptions{From: pos + 1, Limit: limit})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, eventfold.ErrArchived) || errors.Is(err, eventfold.ErrInvalidInput) {
				return nil, fmt.Errorf("listener: %w", err)
			}
			fails++
			r.o.Logger.Warn("listener: reading the log failed; retrying", "from", pos+1, "attempt", fails, "err", err)
			backoff.Sleep(ctx, backoff.Delay(fails, r.o.RetryMin, r.o.RetryMax))
			continue
		}
		fails = 0
		if len(evs) > 0 {
			if r.caughtUp != nil {
				r.caughtUp(false)
			}
			return evs, nil
		}
		if r.caughtUp != nil {
			r.caughtUp(true)
		}
		// After a wake-up that found nothing (on PostgreSQL, a transaction
		// that started earlier still holds the read horizon back), the
		// committed events become readable as soon as it ends, and no
		// further wake-up may come: re-read soon, backing off towards the
		// poll interval.
		wait := r.o.PollInterval
		if woken > 0 {
			wait = min(wait, time.Millisecond<<min(woken, 10))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-wake:
			woken = 1
		case <-t.C:
			if woken > 0 {
				woken++
			}
			if wait >= r.o.PollInterval {
				woken = 0
			}
		}
		t.Stop()
	}
}

func headWithRetry(ctx context.Context, store eventfold.Log, o *Options) (int64, error) {
	for fails := 1; ; fails++ {
		h, err := store.Head(ctx)
		if err == nil || ctx.Err() != nil {
			return h, nil
		}
		o.Logger.Warn("listener: reading the head failed; retrying", "attempt", fails, "err", err)
		backoff.Sleep(ctx, backoff.Delay(fails, o.RetryMin, o.RetryMax))
	}
}
