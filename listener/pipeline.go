package listener

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/backoff"
)

// PipelineHandler starts handing one batch on (a broker's asynchronous
// publish) and returns without waiting for the outcome. The wait it returns
// blocks until the batch is settled and returns nil when all of it was
// acknowledged; it must return within a bounded time (the handler's own
// acknowledgement timeout), also after ctx ended, so that a clean stop can
// save the progress of the batches in flight. A nil wait means the batch is
// already settled.
//
// An error, returned by the handler or by a wait, makes the subscription
// wait for every batch still in flight (their outcomes are dropped), back
// off and hand the batches again from the first one not confirmed: later
// batches are never counted past an earlier one that failed, and the
// handler must be idempotent, as with NewBatch.
type PipelineHandler func(ctx context.Context, b Batch) (wait func() error, err error)

// NewPipeline is NewBatch with read-ahead: while the batches handed on are
// pending (at most inFlight of them; below 1 means 1), the subscription
// reads and hands the next ones, so the database read of batch n+1 and the
// broker's acknowledgements of batch n overlap. The waits are called in
// order on the subscription's goroutine, and the checkpoint moves to a
// batch's end only once its wait and every earlier one returned nil. When
// a read comes back short of Options.BatchSize (it reached the head), the
// batches in flight are settled before the next read, so a caught-up
// subscription has nothing pending and its stored lag is 0.
func NewPipeline[TTx any](store *eventfold.Store[TTx], name string, h PipelineHandler, inFlight int, opts *Options) (*Subscription[TTx], error) {
	if h == nil {
		return nil, errors.New("listener: nil handler")
	}
	s, err := newSubscription(store, name, nil, nil, opts)
	if err != nil {
		return nil, err
	}
	s.hp, s.inFlight = h, max(inFlight, 1)
	// The batch mode's checkpoint bookkeeping (bPos, saveBatch, flushBatch,
	// the caught-up save) serves this mode too.
	s.hb = func(context.Context, Batch) error {
		return errors.New("listener: pipeline handler called as a batch handler")
	}
	return s, nil
}

// pending is a batch handed on whose outcome is not known yet.
type pending struct {
	b    Batch
	wait func() error
}

// drivePipeline is drive's loop for NewPipeline: read ahead while batches
// are pending, settle them in order, move the checkpoint behind them.
func (s *Subscription[TTx]) drivePipeline(ctx context.Context, r *reader, pos int64) error {
	var (
		window  []pending
		attempt int   // consecutive failures
		failing Batch // the batch of the last failure
	)
	// settle waits for the oldest batch in flight and, when it succeeded,
	// moves the position reached past it.
	settle := func() error {
		p := window[0]
		window[0] = pending{}
		window = window[1:]
		if err := callWait(p.wait); err != nil {
			failing = p.b
			return fmt.Errorf("batch handler, positions %d..%d: %w", firstPosition(p.b), p.b.Through, err)
		}
		attempt = 0
		s.delivered(len(p.b.Events))
		s.bPos = p.b.Through
		s.setPosition(p.b.Through)
		if ctx.Err() == nil && time.Since(s.bSavedAt) < s.o.CheckpointInterval {
			return nil
		}
		return s.saveBatch(ctx)
	}
	// drain waits for every batch in flight and drops their outcomes (the
	// handler must not be called again while batches are in flight).
	drain := func() {
		for _, p := range window {
			_ = callWait(p.wait)
		}
		clear(window)
		window = window[:0]
	}
	// settleAll settles the window in order, until the first failure.
	settleAll := func() error {
		for len(window) > 0 {
			if err := settle(); err != nil {
				drain()
				return err
			}
		}
		return nil
	}
	// failed handles a handler or wait error once nothing is in flight:
	// back off, and read again after the last batch confirmed.
	failed := func(err error) error {
		if errors.Is(err, errLeaseLost) {
			return errLeaseLost
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		attempt++
		s.fail(fmt.Errorf("%w (attempt %d)", err, attempt))
		if s.o.MaxAttempts > 0 && attempt >= s.o.MaxAttempts {
			var ev eventfold.Event
			if len(failing.Events) > 0 {
				ev = failing.Events[0]
			}
			return &HandlerError{Subscription: s.name, Event: ev, Attempts: attempt, Err: err}
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt, s.o.RetryMin, s.o.RetryMax)) {
			return ctx.Err()
		}
		pos = s.bPos
		return nil
	}
	for {
		var (
			evs []eventfold.Event
			err error
		)
		if len(window) > 0 {
			// Something is pending: look for more without waiting; when
			// there is nothing new (or the read failed), settle first.
			evs, err = s.peek(ctx, pos, s.o.BatchSize)
			if err == nil && len(evs) == 0 {
				if err := settleAll(); err != nil {
					if err := failed(err); err != nil {
						return err
					}
				}
				continue
			}
		} else {
			evs, err = r.next(ctx, pos, s.o.BatchSize)
		}
		if err != nil {
			// ctx ended (a clean stop or a lost lease) or a read a retry
			// cannot cure: keep what the batches in flight achieved.
			if serr := settleAll(); serr != nil && ctx.Err() == nil {
				err = errors.Join(err, serr)
			}
			return err
		}
		b := Batch{Through: evs[len(evs)-1].GlobalPosition}
		for _, ev := range evs {
			if s.o.Filter.Match(ev) {
				b.Events = append(b.Events, ev)
			}
		}
		pos = b.Through
		if len(b.Events) == 0 {
			window = append(window, pending{b: b})
		} else {
			wait, herr := callPipelineHandler(ctx, s.hp, b)
			if herr != nil {
				// The batches before this one may well be fine: settle
				// them first.
				failing = b
				herr = fmt.Errorf("batch handler, positions %d..%d: %w", firstPosition(b), b.Through, herr)
				if err := failed(errors.Join(herr, settleAll())); err != nil {
					return err
				}
				continue
			}
			window = append(window, pending{b: b, wait: wait})
		}
		// A short read reached the head: settle now rather than read again
		// at once (live, that read would mostly find nothing, and the
		// acknowledgements, not the next read, are what the events wait
		// for).
		short := len(evs) < s.o.BatchSize
		for len(window) > 0 && (short || len(window) >= s.inFlight || window[0].wait == nil) {
			if err := settle(); err != nil {
				drain()
				if err := failed(err); err != nil {
					return err
				}
				break
			}
		}
	}
}

// peek reads once after pos without waiting. A failed read counts as
// nothing new (the caller settles, then reads with retries).
func (s *Subscription[TTx]) peek(ctx context.Context, pos int64, limit int) ([]eventfold.Event, error) {
	evs, err := s.store.ReadAll(ctx, eventfold.ReadAllOptions{From: pos + 1, Limit: limit})
	switch {
	case err == nil:
		return evs, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	default:
		return nil, nil
	}
}

func firstPosition(b Batch) int64 {
	if len(b.Events) > 0 {
		return b.Events[0].GlobalPosition
	}
	return b.Through
}

func callPipelineHandler(ctx context.Context, h PipelineHandler, b Batch) (wait func() error, err error) {
	defer func() {
		if p := recover(); p != nil {
			wait, err = nil, fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h(ctx, b)
}

func callWait(wait func() error) (err error) {
	if wait == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return wait()
}
