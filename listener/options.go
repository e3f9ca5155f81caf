package listener

import (
	"log/slog"
	"time"
)

// StartAtHead, as Options.StartAt, starts a new subscription (or a Tail) at
// the current head: only events committed from now on are delivered.
const StartAtHead int64 = -1

// Options configures a Subscription or a Tail. The zero value is usable:
// every field says its default.
type Options struct {
	// Filter selects the events handed to the handler. Defaults to all.
	Filter Filter
	// StartAt is where a durable subscription without a checkpoint starts:
	// events after this position are delivered. 0 (the default) means the
	// beginning of the log, StartAtHead the current head. Ignored once the
	// subscription has a checkpoint.
	StartAt int64
	// BatchSize is how many events one read fetches. Defaults to 500.
	BatchSize int
	// PollInterval is how long a caught-up follower waits before reading
	// again when no wake-up arrives. It bounds delivery delay on MySQL,
	// SQLite and SQL Server (and on PostgreSQL without a pgxdriver.Listener or
	// behind PgBouncer); each poll is one indexed range read. A follower
	// that knows committed events are held back re-reads sooner (see the
	// package documentation, Events held back). Defaults to 500ms.
	PollInterval time.Duration
	// Wakeup, when set, wakes caught-up followers early: feed it from a
	// Notifier (same process) and/or a pgxdriver.Listener (any process).
	Wakeup *Signal
	// LeaseTTL is how long a durable subscription's lease lasts unless
	// renewed; it is renewed every LeaseTTL/3. After a crash, another
	// instance takes over within about LeaseTTL + LeaseTTL/3; after a clean
	// stop, within LeaseTTL/3. Defaults to 15s.
	LeaseTTL time.Duration
	// Owner identifies this process in the leases table. Defaults to
	// host:pid:random.
	Owner string
	// RetryMin and RetryMax bound the exponential backoff after a handler
	// error or a database error. Default 100ms and 30s.
	RetryMin, RetryMax time.Duration
	// MaxAttempts, when > 0, makes Run return a *HandlerError once one event
	// has failed that many times in a row, rather than retrying forever.
	// The event is never skipped: its checkpoint stays before it.
	MaxAttempts int
	// CheckpointInterval bounds how long handled events may stay
	// unrecorded in at-least-once mode when batches are slow (the
	// checkpoint is saved at the end of every batch anyway). Defaults to 1s.
	CheckpointInterval time.Duration
	// Logger receives errors that are retried. Defaults to slog.Default().
	Logger *slog.Logger
	// Observer, when set, is told about every handler call and lease
	// change of a durable subscription (see package otelfold). Defaults to
	// nil.
	Observer Observer
}

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.BatchSize <= 0 {
		out.BatchSize = 500
	}
	if out.PollInterval <= 0 {
		out.PollInterval = 500 * time.Millisecond
	}
	if out.LeaseTTL <= 0 {
		out.LeaseTTL = 15 * time.Second
	}
	if out.Owner == "" {
		out.Owner = defaultOwner()
	}
	if out.RetryMin <= 0 {
		out.RetryMin = 100 * time.Millisecond
	}
	if out.RetryMax <= 0 {
		out.RetryMax = 30 * time.Second
	}
	if out.RetryMax < out.RetryMin {
		out.RetryMax = out.RetryMin
	}
	if out.CheckpointInterval <= 0 {
		out.CheckpointInterval = time.Second
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}
