package listener

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/backoff"
)

// Handler handles one event of an at-least-once subscription. It may see an
// event again after a crash, a lost lease or its own error, so it must be
// idempotent (the event ID is a good deduplication key). Returning an error
// retries the same event after a backoff; the subscription never moves past
// an event whose handler failed.
type Handler func(ctx context.Context, ev eventfold.Event) error

// TxHandler handles one event of an exactly-once subscription inside tx, the
// transaction in which the subscription's checkpoint moves past the event:
// the handler's writes and the checkpoint commit together or not at all.
// Several events may share one transaction. Returning an error rolls back
// the transaction (the handler's writes with it) and retries later. On
// SQLite, do not open another write transaction from inside the handler.
type TxHandler[TTx any] func(ctx context.Context, tx TTx, ev eventfold.Event) error

// HandlerError is returned by Run when an event still fails after
// Options.MaxAttempts attempts (Subscription, Event and Attempts set). The
// checkpoint stays before the event. It is an alias of
// eventfold.HandlerError, the one type that both the listener and the
// orchestrator return, so errors.As matches it under either name.
type HandlerError = eventfold.HandlerError

// ErrAlreadyRunning is returned by Run when the Subscription value is
// already running.
var ErrAlreadyRunning = errors.New("listener: subscription already running")

// errLeaseLost stops driving: another process holds the lease or moved the
// checkpoint. Run goes back to standby.
var errLeaseLost = errors.New("listener: lease lost")

// Subscription is a durable, named subscription: its checkpoint is stored
// in the database, and a lease ensures only one process drives it at a
// time. Create it with New (at-least-once) or NewTx (exactly-once) and call
// Run. Every instance of a service may run the same subscription: the ones
// without the lease stand by and take over when it is released or expires.
type Subscription[TTx any] struct {
	store *eventfold.Store[TTx]
	name  string
	o     Options
	h     Handler
	htx   TxHandler[TTx]
	hb    BatchHandler // NewBatch (batch.go)
	// hp and inFlight: NewPipeline (pipeline.go); hb is set too.
	hp       PipelineHandler
	inFlight int
	// bSaved/bPos/bSavedAt: a batch subscription's stored and reached
	// positions (drive's goroutine only; batch.go).
	bSaved, bPos int64
	bSavedAt     time.Time

	running atomic.Bool
	mu      sync.Mutex
	stats   Stats
}

// Stats is a snapshot of what one Subscription instance knows in memory.
// For the stored checkpoint and lag of any subscription, see Checkpoints.
type Stats struct {
	// Name is the subscription's name.
	Name string `json:"name"`
	// Owner is this instance's lease owner id.
	Owner string `json:"owner"`
	// Holding is true while this instance holds the lease and drives.
	Holding bool `json:"holding"`
	// Position is the last position handled (or passed by the filter) by
	// this instance.
	Position int64 `json:"position"`
	// CaughtUp is true when the last read found nothing new.
	CaughtUp bool `json:"caught_up"`
	// Delivered counts events handled successfully by this instance.
	Delivered uint64 `json:"delivered"`
	// Failures counts handler and database errors.
	Failures uint64 `json:"failures"`
	// LastError and LastErrorAt describe the most recent failure.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// New returns an at-least-once durable subscription named name: h runs
// outside any transaction and the checkpoint is saved after handling.
func New[TTx any](store *eventfold.Store[TTx], name string, h Handler, opts *Options) (*Subscription[TTx], error) {
	if h == nil {
		return nil, errors.New("listener: nil handler")
	}
	return newSubscription(store, name, h, nil, opts)
}

// NewTx returns an exactly-once durable subscription named name: h runs
// inside the transaction that moves the checkpoint.
func NewTx[TTx any](store *eventfold.Store[TTx], name string, h TxHandler[TTx], opts *Options) (*Subscription[TTx], error) {
	if h == nil {
		return nil, errors.New("listener: nil handler")
	}
	return newSubscription(store, name, nil, h, opts)
}

func newSubscription[TTx any](store *eventfold.Store[TTx], name string, h Handler, htx TxHandler[TTx], opts *Options) (*Subscription[TTx], error) {
	if err := validateName(name); err != nil {
		return nil, err
	}
	if _, err := readOps(store); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	if err := eventfold.ValidateIdentifier("lease owner", o.Owner, 0); err != nil {
		return nil, err
	}
	if o.StartAt < StartAtHead {
		return nil, &eventfold.ValidationError{Field: "start position", Reason: fmt.Sprintf("%d is neither a position nor StartAtHead", o.StartAt)}
	}
	s := &Subscription[TTx]{store: store, name: name, o: o, h: h, htx: htx}
	s.stats.Name, s.stats.Owner = name, o.Owner
	return s, nil
}

// Name returns the subscription's name.
func (s *Subscription[TTx]) Name() string { return s.name }

// Stats returns a snapshot of this instance's counters.
func (s *Subscription[TTx]) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Lag returns how far the stored checkpoint is behind the head, in position
// space (see CheckpointInfo.Lag).
func (s *Subscription[TTx]) Lag(ctx context.Context) (int64, error) {
	return Lag(ctx, s.store, s.name)
}

// Run drives the subscription until ctx ends, then saves its progress,
// releases its lease and returns nil. While another process holds the lease
// it stands by. It returns an error only for what a retry cannot cure: a
// *HandlerError (with Options.MaxAttempts), archived events, or a schema
// newer than this eventfold knows (eventfold.ErrSchemaNewer: its lease and
// checkpoint writes are refused), or the database refusing the account a
// statement (a permission error, until a DBA grants the privilege).
// Other database errors, a missing migration
// among them, are logged and retried with
// backoff until ctx ends, so that a subscription started before the
// database is ready, or while it restarts, recovers by itself.
func (s *Subscription[TTx]) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer s.running.Store(false)
	fails := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		held, err := s.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, eventfold.ErrSchemaNewer) || permissionDenied(s.store, err) {
				// No retry cures it: the Store keeps its answer until the
				// program is upgraded (and restarted); a privilege is
				// missing until a DBA grants it (see permissionDenied).
				return fmt.Errorf("listener: subscription %q: %w", s.name, err)
			}
			fails++
			s.fail(fmt.Errorf("acquire lease: %w", err))
			backoff.Sleep(ctx, backoff.Delay(fails, s.o.RetryMin, s.o.RetryMax))
			continue
		}
		fails = 0
		if !held {
			backoff.Sleep(ctx, s.o.LeaseTTL/3)
			continue
		}
		s.setHolding(true)
		err = s.drive(ctx)
		s.setHolding(false)
		s.release()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errLeaseLost):
			s.o.Logger.Info("listener: lease lost; standing by", "subscription", s.name, "owner", s.o.Owner)
		default:
			return err
		}
	}
}

func (s *Subscription[TTx]) acquire(ctx context.Context) (bool, error) {
	var held bool
	err := writeOps(ctx, s.store, func(so subscriptionOps) (err error) {
		held, err = so.AcquireLease(ctx, s.name, s.o.Owner, s.o.LeaseTTL)
		return err
	})
	return held, err
}

// release gives the lease up at once so a standby takes over without
// waiting for the expiry. It runs after ctx may have ended, so it uses a
// context of its own.
func (s *Subscription[TTx]) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := writeOps(ctx, s.store, func(so subscriptionOps) error { return so.ReleaseLease(ctx, s.name, s.o.Owner) })
	if err != nil {
		s.o.Logger.Warn("listener: releasing lease failed; it will expire", "subscription", s.name, "err", err)
	}
}

// renew keeps the lease alive while driving, and cancels the drive when the
// lease is gone or could not be renewed for half its lifetime (so that the
// drive stops before another process can take over).
func (s *Subscription[TTx]) renew(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(s.o.LeaseTTL / 3)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Bound each renewal: a call hung on a dead connection must not
		// keep this process driving past the lease's expiry. The lease runs
		// from when the renewal was sent, so that is what lastOK records.
		sent := time.Now()
		actx, acancel := context.WithTimeout(ctx, s.o.LeaseTTL/3)
		held, err := s.acquire(actx)
		acancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && held:
			lastOK = sent
		case err == nil:
			cancel(errLeaseLost)
			return
		default:
			s.fail(fmt.Errorf("renew lease: %w", err))
			if time.Since(lastOK) >= s.o.LeaseTTL/2 {
				cancel(errLeaseLost)
				return
			}
		}
	}
}

// drive runs the subscription while this process holds the lease.
func (s *Subscription[TTx]) drive(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.renew(ctx, cancel)
	}()
	defer func() {
		cancel(nil)
		wg.Wait()
	}()

	pos, err := s.loadCheckpoint(ctx)
	if err != nil {
		return s.stopCause(ctx, err)
	}
	s.setPosition(pos)
	r := newReader(s.store, &s.o, s.setCaughtUp)
	defer r.close()
	if s.hb != nil {
		s.bSaved, s.bPos, s.bSavedAt = pos, pos, time.Now()
		r.caughtUp = s.batchCaughtUp(ctx)
		defer s.flushBatch(ctx)
	}
	if s.hp != nil {
		return s.stopCause(ctx, s.drivePipeline(ctx, r, pos))
	}
	limit := s.o.BatchSize
	for {
		evs, err := r.next(ctx, pos, limit)
		if err != nil {
			return s.stopCause(ctx, err)
		}
		switch {
		case s.hb != nil:
			pos, err = s.handleBatch(ctx, pos, evs)
		case s.htx != nil:
			pos, err = s.handleTx(ctx, pos, evs)
		default:
			pos, err = s.handle(ctx, pos, evs)
		}
		if err != nil {
			return s.stopCause(ctx, err)
		}
	}
}

// stopCause tells why the drive stopped: the lease renewer's verdict wins
// over the context error it caused.
func (s *Subscription[TTx]) stopCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
		if errors.Is(cause, errLeaseLost) {
			return errLeaseLost
		}
		return ctx.Err()
	}
	return err
}

// loadCheckpoint returns the stored checkpoint, creating it at StartAt for a
// subscription that never ran.
func (s *Subscription[TTx]) loadCheckpoint(ctx context.Context) (int64, error) {
	for fails := 1; ; fails++ {
		pos, err := s.tryLoadCheckpoint(ctx)
		if err == nil || ctx.Err() != nil {
			return pos, err
		}
		if permissionDenied(s.store, err) {
			return 0, fmt.Errorf("listener: subscription %q: load checkpoint: %w", s.name, err)
		}
		s.fail(err)
		backoff.Sleep(ctx, backoff.Delay(fails, s.o.RetryMin, s.o.RetryMax))
	}
}

func (s *Subscription[TTx]) tryLoadCheckpoint(ctx context.Context) (int64, error) {
	so, err := readOps(s.store)
	if err != nil {
		return 0, err
	}
	pos, found, err := so.GetCheckpoint(ctx, s.name)
	if err != nil || found {
		return pos, err
	}
	start := s.o.StartAt
	if start == StartAtHead {
		if start, err = s.store.Head(ctx); err != nil {
			return 0, err
		}
	}
	err = writeOps(ctx, s.store, func(so subscriptionOps) error { return so.CreateCheckpoint(ctx, s.name, start) })
	if err != nil {
		return 0, err
	}
	pos, _, err = so.GetCheckpoint(ctx, s.name)
	return pos, err
}

// handle runs the at-least-once handler over one batch read after pos and
// returns the new position. Progress is saved at the end of the batch,
// every CheckpointInterval, before backing off after an error, and when
// stopping.
func (s *Subscription[TTx]) handle(ctx context.Context, pos int64, evs []eventfold.Event) (int64, error) {
	saved := pos
	lastSave := time.Now()
	save := func() error {
		if pos == saved {
			return nil
		}
		// Saved even when ctx has ended, so a clean stop keeps its
		// progress; the compare-and-set keeps a stale instance out.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.advance(sctx, saved, pos); err != nil {
			return err
		}
		saved, lastSave = pos, time.Now()
		return nil
	}
	for _, ev := range evs {
		if ctx.Err() != nil {
			return pos, errors.Join(ctx.Err(), save())
		}
		if s.o.Filter.Match(ev) {
			for attempt := 1; ; attempt++ {
				hctx, end := s.startHandle(ctx, ev)
				err := callHandler(hctx, s.h, ev)
				end(err)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return pos, errors.Join(ctx.Err(), save())
				}
				s.fail(fmt.Errorf("handler, event at position %d (attempt %d): %w", ev.GlobalPosition, attempt, err))
				if serr := save(); serr != nil {
					return pos, serr
				}
				if s.o.MaxAttempts > 0 && attempt >= s.o.MaxAttempts {
					return pos, &HandlerError{Subscription: s.name, Event: ev, Attempts: attempt, Err: err}
				}
				if !backoff.Sleep(ctx, backoff.Delay(attempt, s.o.RetryMin, s.o.RetryMax)) {
					return pos, ctx.Err()
				}
			}
			s.delivered(1)
		}
		pos = ev.GlobalPosition
		s.setPosition(pos)
		if time.Since(lastSave) >= s.o.CheckpointInterval {
			if err := save(); err != nil {
				return pos, err
			}
		}
	}
	return pos, save()
}

// advance moves the stored checkpoint from expected to pos, retrying
// database errors for a while; a failed compare-and-set means the lease was
// lost.
func (s *Subscription[TTx]) advance(ctx context.Context, expected, pos int64) error {
	for fails := 1; ; fails++ {
		var ok bool
		err := writeOps(ctx, s.store, func(so subscriptionOps) (err error) {
			ok, err = so.AdvanceCheckpoint(ctx, s.name, expected, pos)
			return err
		})
		if err == nil && !ok {
			return errLeaseLost
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || permissionDenied(s.store, err) {
			return fmt.Errorf("listener: save checkpoint of %q at %d: %w", s.name, pos, err)
		}
		s.fail(fmt.Errorf("save checkpoint: %w", err))
		backoff.Sleep(ctx, backoff.Delay(fails, s.o.RetryMin, s.o.RetryMax))
	}
}

// handleTx runs the exactly-once handler over one batch read after pos, in
// one transaction with the checkpoint, and returns the new position. When
// an event fails, the events before it are committed first, then the failing
// one is retried alone with backoff, so one bad event neither blocks the
// others' progress nor repeats their work.
func (s *Subscription[TTx]) handleTx(ctx context.Context, pos int64, evs []eventfold.Event) (int64, error) {
	for attempt := 1; ; attempt++ {
		failedAt := -1
		var herr error
		matched := 0
		last := evs[len(evs)-1].GlobalPosition
		err := s.store.InTx(ctx, func(tx TTx) error {
			for i, ev := range evs {
				if !s.o.Filter.Match(ev) {
					continue
				}
				hctx, end := s.startHandle(ctx, ev)
				err := callTxHandler(hctx, s.htx, tx, ev)
				end(err)
				if err != nil {
					failedAt, herr = i, err
					return err
				}
				matched++
			}
			ok, err := s.store.OpsTx(tx).AdvanceCheckpoint(ctx, s.name, pos, last)
			if err != nil {
				return err
			}
			if !ok {
				return errLeaseLost
			}
			return nil
		})
		if err == nil {
			s.delivered(matched)
			s.setPosition(last)
			return last, nil
		}
		if errors.Is(err, errLeaseLost) || ctx.Err() != nil {
			return pos, err
		}
		if failedAt > 0 {
			// Commit what worked; the caller reads the failing event again
			// as the first of the next batch.
			evs = evs[:failedAt]
			attempt--
			continue
		}
		if herr != nil {
			evs = evs[:1]
			s.fail(fmt.Errorf("handler, event at position %d (attempt %d): %w", evs[0].GlobalPosition, attempt, herr))
			if s.o.MaxAttempts > 0 && attempt >= s.o.MaxAttempts {
				return pos, &HandlerError{Subscription: s.name, Event: evs[0], Attempts: attempt, Err: herr}
			}
		} else {
			if permissionDenied(s.store, err) {
				return pos, fmt.Errorf("listener: subscription %q: transaction for positions %d..%d: %w", s.name, evs[0].GlobalPosition, last, err)
			}
			s.fail(fmt.Errorf("transaction for positions %d..%d: %w", evs[0].GlobalPosition, last, err))
		}
		if !backoff.Sleep(ctx, backoff.Delay(attempt, s.o.RetryMin, s.o.RetryMax)) {
			return pos, ctx.Err()
		}
	}
}

func callHandler(ctx context.Context, h Handler, ev eventfold.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h(ctx, ev)
}

func callTxHandler[TTx any](ctx context.Context, h TxHandler[TTx], tx TTx, ev eventfold.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return h(ctx, tx, ev)
}

func (s *Subscription[TTx]) fail(err error) {
	s.o.Logger.Warn("listener: retrying", "subscription", s.name, "err", err)
	s.mu.Lock()
	s.stats.Failures++
	s.stats.LastError, s.stats.LastErrorAt = err.Error(), time.Now()
	s.mu.Unlock()
}

func (s *Subscription[TTx]) setHolding(v bool) {
	s.mu.Lock()
	s.stats.Holding = v
	s.mu.Unlock()
	if s.o.Observer != nil {
		s.o.Observer.Lease(s.name, v)
	}
}

func (s *Subscription[TTx]) setCaughtUp(v bool) {
	s.mu.Lock()
	s.stats.CaughtUp = v
	s.mu.Unlock()
}

func (s *Subscription[TTx]) setPosition(p int64) {
	s.mu.Lock()
	s.stats.Position = p
	s.mu.Unlock()
}

func (s *Subscription[TTx]) delivered(n int) {
	s.mu.Lock()
	s.stats.Delivered += uint64(n)
	s.mu.Unlock()
}
