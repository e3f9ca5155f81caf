package listener

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/backoff"
	"github.com/eventfold/eventfold/internal/contract"
)

// DefaultChannel is the PostgreSQL notification channel eventfold uses.
const DefaultChannel = contract.DefaultChannel

// NotifierOptions configures a Notifier. The zero value is usable.
type NotifierOptions struct {
	// Signal, when set, is announced at once on every Notify (Signal.Announce
	// with the position), so followers in this process wake without a
	// database round trip (on every dialect).
	Signal *Signal
	// Channel is the PostgreSQL channel. Defaults to DefaultChannel.
	Channel string
	// MinInterval spaces notifications out: at most one per MinInterval,
	// carrying the highest position announced meanwhile. Defaults to 0: the
	// next notification leaves as soon as the previous one is done, which
	// already coalesces everything committed while one is in flight.
	MinInterval time.Duration
	// Logger receives failed notifications. Defaults to slog.Default().
	Logger *slog.Logger
}

// Notifier announces commits to listeners in other processes with
// PostgreSQL's pg_notify, sent after the commit, outside the write
// transaction, and coalesced: Notify never blocks and never touches the
// database itself; Run sends at most one notification at a time, carrying
// the highest position announced since the previous one. Under load many
// commits share one notification, so the database-wide lock NOTIFY takes at
// commit is paid rarely and never by the writers. On other dialects (no
// NOTIFY) only the in-process Signal is fed.
//
// Wire Notify into the orchestrator's after-commit hook, e.g.
//
//	n := listener.NewNotifier(store, &listener.NotifierOptions{Signal: sig})
//	go n.Run(ctx)
//	cfg.AfterCommit = n.AfterCommit // orchestrator.Config
type Notifier struct {
	o    NotifierOptions
	exec func(ctx context.Context, payload string) error

	mu      sync.Mutex
	pending int64 // highest position not yet announced; 0 when none
	dirty   bool
	kick    chan struct{}
	sent    uint64
	// coalesced counts Notify calls that joined a notification already due.
	coalesced uint64
}

// NewNotifier returns a Notifier for store. Call Run to send notifications.
func NewNotifier(store eventfold.Log, opts *NotifierOptions) *Notifier {
	n := &Notifier{kick: make(chan struct{}, 1)}
	if opts != nil {
		n.o = *opts
	}
	if n.o.Channel == "" {
		n.o.Channel = DefaultChannel
	}
	if n.o.Logger == nil {
		n.o.Logger = slog.Default()
	}
	if ops := store.Ops(); ops.Capabilities().Notify {
		ch := n.o.Channel
		n.exec = func(ctx context.Context, payload string) error {
			return ops.Notify(ctx, ch, payload)
		}
	}
	return n
}

// Notify announces that events up to position pos committed. It does not
// block. Safe for concurrent use.
func (n *Notifier) Notify(pos int64) {
	n.o.Signal.Announce(pos)
	if n.exec == nil {
		return
	}
	n.mu.Lock()
	n.pending = max(n.pending, pos)
	if n.dirty {
		n.coalesced++
	}
	n.dirty = true
	n.mu.Unlock()
	select {
	case n.kick <- struct{}{}:
	default: // a send is already due; it will carry pos
	}
}

// NotifyEvents is Notify with the highest position among events; it does
// nothing for none (a command that produced no events).
func (n *Notifier) NotifyEvents(events []eventfold.Event) {
	if len(events) == 0 {
		return
	}
	var hi int64
	for _, e := range events {
		hi = max(hi, e.GlobalPosition)
	}
	n.Notify(hi)
}

// AfterCommit has the signature of the orchestrator's Config.AfterCommit
// hook, so it can be assigned directly: cfg.AfterCommit = n.AfterCommit.
func (n *Notifier) AfterCommit(_ context.Context, events []eventfold.Event) { n.NotifyEvents(events) }

// Sent returns how many notifications went to the database.
func (n *Notifier) Sent() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.sent
}

// Coalesced returns how many Notify calls sent no notification of their
// own: their position joined one that was already due.
func (n *Notifier) Coalesced() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.coalesced
}

// Run sends notifications until ctx ends, then returns nil. A failed
// notification is logged and not retried: listeners poll as well, so a lost
// hint only delays delivery.
func (n *Notifier) Run(ctx context.Context) error {
	if n.exec == nil {
		<-ctx.Done()
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.kick:
		}
		n.mu.Lock()
		pos, dirty := n.pending, n.dirty
		n.pending, n.dirty = 0, false
		n.mu.Unlock()
		if !dirty {
			continue
		}
		if err := n.exec(ctx, strconv.FormatInt(pos, 10)); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			n.o.Logger.Warn("listener: notify failed; listeners will poll", "channel", n.o.Channel, "err", fmt.Errorf("notify position %d: %w", pos, err))
		} else {
			n.mu.Lock()
			n.sent++
			n.mu.Unlock()
		}
		if n.o.MinInterval > 0 && !backoff.Sleep(ctx, n.o.MinInterval) {
			return nil
		}
	}
}

// EnableNotifyTrigger attaches eventfold.notify_events to eventfold.events
// (PostgreSQL only), so appends made directly from SQL wake listeners too.
// It costs the write path (NOTIFY at every commit that appended); prefer a
// Notifier when every append goes through the Go library.
func EnableNotifyTrigger(ctx context.Context, store eventfold.Log) error {
	if err := store.Ops().EnableNotifyTrigger(ctx); err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	return nil
}

// DisableNotifyTrigger detaches the trigger EnableNotifyTrigger attached.
func DisableNotifyTrigger(ctx context.Context, store eventfold.Log) error {
	if err := store.Ops().DisableNotifyTrigger(ctx); err != nil {
		return fmt.Errorf("listener: %w", err)
	}
	return nil
}
