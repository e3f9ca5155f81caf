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
// an error matching eventfold.ErrArchived when it must read events that
// were archived, and the database's error when it refuses the account the
// read (a permission error: no retry cures it until a DBA grants it).
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
	r := newReader(store, &o, nil)
	defer r.close()
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
// database errors with backoff. Readers of the same log in one process
// share their reads at the head (shared.go); close the reader when done.
type reader struct {
	store eventfold.Log
	o     *Options
	// caughtUp is called with true each time a read comes back empty.
	caughtUp func(bool)
	shared   *sharedReader
	// lastRead is when (monoNow) the read that produced the last events
	// returned started (0 before the first).
	lastRead int64
	// lags: the log's head can stay below committed events
	// (Capabilities.HeadLags).
	lags bool
	// owed is a position this reader knows committed and has not read
	// yet (0: none): announced, or the log's last position. While it is
	// owed, a read that finds nothing is repeated soon, backing off
	// (soon counts those re-reads) towards the poll interval: the events
	// held back become readable when a transaction ends, and nothing
	// announces that. It is kept across next calls, so a read that
	// returned part of what was announced is followed up too.
	owed int64
	soon int
	// taken is the highest position ever taken as owed: an announcement
	// at or below it is not taken again.
	taken int64
	// owedAt is when the announcement that set owed was made (its
	// signalGen.posAt; 0 when owed came from the log's last position), and
	// discredited the latest such time whose announcement the log did not
	// bear out (recheck): announcements made no later are not taken again,
	// so one of another log's positions costs a second of re-reads once.
	owedAt, discredited int64
	// broadcasts is the signal's count of wake-ups without a position
	// that this reader has answered by asking the log (checked: at least
	// once).
	broadcasts uint64
	checked    bool
}

// shareReads is false only in tests that follow readers reading alone.
var shareReads = true

func newReader(store eventfold.Log, o *Options, caughtUp func(bool)) *reader {
	r := &reader{store: store, o: o, caughtUp: caughtUp, lags: store.Ops().Capabilities().HeadLags}
	if shareReads {
		r.shared = joinShared(store)
	}
	return r
}

// close leaves the shared reader.
func (r *reader) close() { r.shared.leave() }

// soonMax caps the re-read backoff while events are owed (1.024s).
const soonMax = 10

// next returns at least one event after pos, or an error: ctx's, or one a
// retry cannot cure (archived events).
func (r *reader) next(ctx context.Context, pos int64, limit int) ([]eventfold.Event, error) {
	fails := 0
	// floor is how fresh the next read must be (monoNow at its start): at
	// least as fresh as what this reader already saw (commits announced
	// since raise it through the wake-up generation), or, at first, from
	// now on.
	floor := r.lastRead
	if r.lastRead == 0 {
		floor = monoNow()
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// Take the wake-up channels before reading: a commit announced
		// between the read and the wait still wakes us. A read that started
		// after the wake-up generation began sees every commit announced
		// before it, so it is fresh enough to share.
		fresh := floor
		var wake <-chan struct{}
		g := r.o.Wakeup.gen()
		if g != nil {
			wake, fresh = g.ch, max(fresh, g.at)
		}
		evs, readAt, advanced, err := r.read(ctx, pos, limit, fresh)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, eventfold.ErrArchived) || errors.Is(err, eventfold.ErrInvalidInput) || permissionDenied(r.store, err) {
				return nil, fmt.Errorf("listener: %w", err)
			}
			fails++
			r.o.Logger.Warn("listener: reading the log failed; retrying", "from", pos+1, "attempt", fails, "err", err)
			backoff.Sleep(ctx, backoff.Delay(fails, r.o.RetryMin, r.o.RetryMax))
			floor = monoNow()
			continue
		}
		fails = 0
		if len(evs) > 0 {
			r.lastRead = readAt
			if r.caughtUp != nil {
				r.caughtUp(false)
			}
			return evs, nil
		}
		if r.caughtUp != nil {
			r.caughtUp(true)
		}
		if r.lags {
			r.account(ctx, g, pos)
		}
		wait := r.o.PollInterval
		if r.owed > pos {
			wait = min(wait, time.Millisecond<<min(r.soon, soonMax))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-wake:
			floor = 0 // the next generation's start is fresh enough
		case <-advanced:
			// Another follower's read completed: take what it found, or
			// wait again (its read counts as this reader's poll, and as
			// its re-read: followers owed the same events step together,
			// and share each re-read).
			r.step(ctx, pos, wait, readAt)
			floor = readAt + 1
		case <-t.C:
			r.step(ctx, pos, wait, readAt)
			// Any read newer than the one that found nothing: one already
			// in flight for another follower serves as this poll too.
			floor = readAt + 1
		}
		t.Stop()
	}
}

// step counts a re-read made while events are owed (after waiting wait,
// since a read that started at readAt found nothing).
func (r *reader) step(ctx context.Context, pos int64, wait time.Duration, readAt int64) {
	if r.owed <= pos {
		return
	}
	r.soon++
	if r.soon == soonMax && wait < r.o.PollInterval {
		// Held back for a second already: make sure the log has
		// committed beyond pos (an announcement of another log's
		// position would keep this reader re-reading every second
		// instead of polling).
		r.recheck(ctx, pos, readAt)
	}
}

// account updates what this reader is owed after a read after through
// found nothing, before it waits: from what was announced before the read
// began (g) and, after a wake-up without a position (or at first), from
// the log's last position. Only an empty read waits, so a read that
// returned part of what committed is followed up by the next call's.
func (r *reader) account(ctx context.Context, g *signalGen, through int64) {
	var target, targetAt int64
	var broadcasts uint64
	if g != nil {
		broadcasts = g.broadcasts
		if g.posAt > r.discredited {
			target, targetAt = g.pos, g.posAt
		}
	}
	if !r.checked || broadcasts != r.broadcasts {
		fresh := monoNow() // at first: nothing to share
		if r.checked && g != nil {
			fresh = g.at
		}
		if last, err := r.lastPosition(ctx, fresh); err == nil {
			if last >= target {
				target, targetAt = last, 0
			}
			r.checked, r.broadcasts = true, broadcasts
		}
	}
	if target > through && target > r.taken {
		if r.owed == 0 {
			r.soon = 0
		}
		r.owed, r.taken, r.owedAt = target, target, targetAt
	}
	if r.owed != 0 && through >= r.owed {
		r.owed, r.soon = 0, 0
	}
}

// lastPosition returns the log's last position from a query that started
// at or after fresh (monoNow), shared with the other followers of the log
// that ask as fresh (after the same wake-up, or the same read), or from a
// query of its own.
func (r *reader) lastPosition(ctx context.Context, fresh int64) (int64, error) {
	if r.shared == nil {
		return r.store.Ops().LastPosition(ctx)
	}
	return r.shared.lastPosition(ctx, fresh)
}

// recheck bounds what is owed by the log's last position, read after the
// read that started at readAt.
func (r *reader) recheck(ctx context.Context, pos, readAt int64) {
	last, err := r.lastPosition(ctx, readAt)
	switch {
	case err != nil:
	case last <= pos:
		// Nothing beyond pos committed: what was owed was announced by
		// mistake (or rolled back). Announcements made later, above pos,
		// are taken again.
		r.discredited = max(r.discredited, r.owedAt)
		r.owed, r.soon, r.taken = 0, 0, min(r.taken, pos)
	default:
		if r.owed > last {
			r.discredited = max(r.discredited, r.owedAt)
		}
		r.owed, r.taken = min(r.owed, last), min(r.taken, last)
	}
}

// read reads after pos through the shared reader when pos is in its
// window, alone otherwise, and returns when the read started and the
// channel the shared reader's next completed read closes (nil if none).
func (r *reader) read(ctx context.Context, pos int64, limit int, fresh int64) ([]eventfold.Event, int64, <-chan struct{}, error) {
	if r.shared != nil {
		evs, start, advanced, served, err := r.shared.read(ctx, pos, limit, fresh)
		if served {
			return evs, start, advanced, err
		}
	}
	start := monoNow()
	evs, err := r.store.ReadAll(ctx, eventfold.ReadAllOptions{From: pos + 1, Limit: limit})
	return evs, start, nil, err
}
func headWithRetry(ctx context.Context, store eventfold.Log, o *Options) (int64, error) {
	for fails := 1; ; fails++ {
		h, err := store.Head(ctx)
		if err == nil || ctx.Err() != nil {
			return h, nil
		}
		if permissionDenied(store, err) {
			return 0, fmt.Errorf("listener: read the head: %w", err)
		}
		o.Logger.Warn("listener: reading the head failed; retrying", "attempt", fails, "err", err)
		backoff.Sleep(ctx, backoff.Delay(fails, o.RetryMin, o.RetryMax))
	}
}
