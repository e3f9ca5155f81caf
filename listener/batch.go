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

// BatchHandler handles one batch of an at-least-once batch subscription
// (NewBatch): the events of one read that pass the filter, in global order.
// The checkpoint moves to b.Through only after it returns nil, so a handler
// that hands events on asynchronously (a broker's async publish) waits for
// every acknowledgement before returning. Returning an error retries the
// same batch after a backoff; it may be handed again after a crash or a lost
// lease, so the handler must be idempotent.
type BatchHandler func(ctx context.Context, b Batch) error

// NewBatch returns an at-least-once durable subscription named name whose
// handler takes a whole batch at a time (Options.BatchSize events at most).
// It is the mode for relays to a broker: publish the batch asynchronously,
// wait for the broker's acknowledgements, return. The checkpoint moves only
// past batches the handler finished, and is saved at most every
// Options.CheckpointInterval while events keep coming, at once when the
// subscription has caught up, and when it stops (so a crash replays at
// most CheckpointInterval's worth of batches; a write transaction per batch
// would cost the live path a commit per event). A handler that is still
// waiting when ctx ends may finish its batch (use context.WithoutCancel for
// the wait): its progress is saved even then.
func NewBatch[TTx any](store *eventfold.Store[TTx], name string, h BatchHandler, opts *Options) (*Subscription[TTx], error) {
	if h == nil {
		return nil, errors.New("listener: nil handler")
	}
	s, err := newSubscription(store, name, nil, nil, opts)
	if err != nil {
		return nil, err
	}
	s.hb = h
	return s, nil
}

// handleBatch runs the batch handler over one batch read after pos,
// retrying it with backoff, and saves the checkpoint after it succeeded.
func (s *Subscription[TTx]) handleBatch(ctx context.Context, pos int64, evs []eventfold.Event) (int64, error) {
	b := Batch{Through: evs[len(evs)-1].GlobalPosition}
	for _, ev := range evs {
		if s.o.Filter.Match(ev) {
			b.Events = append(b.Events, ev)
		}
	}
	if len(b.Events) > 0 {
		for attempt := 1; ; attempt++ {
			err := callBatchHandler(ctx, s.hb, b)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return pos, ctx.Err()
			}
			s.fail(fmt.Errorf("batch handler, positions %d..%d (attempt %d): %w", b.Events[0].GlobalPosition, b.Through, attempt, err))
			if s.o.MaxAttempts > 0 && attempt >= s.o.MaxAttempts {
				return pos, &HandlerError{Subscription: s.name, Event: b.Events[0], Attempts: attempt, Err: err}
			}
			if !backoff.Sleep(ctx, backoff.Delay(attempt, s.o.RetryMin, s.o.RetryMax)) {
				return pos, ctx.Err()
			}
		}
		s.delivered(len(b.Events))
	}
	s.bPos = b.Through
	s.setPosition(b.Through)
	if ctx.Err() == nil && time.Since(s.bSavedAt) < s.o.CheckpointInterval {
		return b.Through, nil
	}
	if err := s.saveBatch(ctx); err != nil {
		return pos, err
	}
	return b.Through, nil
}

// saveBatch moves the stored checkpoint to the position reached. It runs
// even when ctx has ended, so a clean stop keeps the progress of a batch
// the handler finished; the compare-and-set keeps a stale instance out.
func (s *Subscription[TTx]) saveBatch(ctx context.Context) error {
	if s.bPos == s.bSaved {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.advance(sctx, s.bSaved, s.bPos); err != nil {
		return err
	}
	s.bSaved, s.bSavedAt = s.bPos, time.Now()
	return nil
}

// batchCaughtUp returns the reader's caught-up callback for a batch
// subscription: when a read finds nothing new, progress not yet saved is
// saved, so an idle subscription's stored lag is 0.
func (s *Subscription[TTx]) batchCaughtUp(ctx context.Context) func(bool) {
	return func(v bool) {
		s.setCaughtUp(v)
		if v && ctx.Err() == nil {
			if err := s.saveBatch(ctx); err != nil && !errors.Is(err, errLeaseLost) {
				s.fail(err)
			}
		}
	}
}

// flushBatch saves what is left when drive ends. A lost lease makes the
// compare-and-set fail, which is right: the new holder owns the checkpoint.
func (s *Subscription[TTx]) flushBatch(ctx context.Context) {
	if err := s.saveBatch(ctx); err != nil && !errors.Is(err, errLeaseLost) {
		s.o.Logger.Warn("listener: saving the checkpoint on stop failed", "subscription", s.name, "err", err)
	}
}

func callBatchHandler(ctx context.Context, h BatchHandler, b Batch) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h(ctx, b)
}
