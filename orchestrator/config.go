package orchestrator

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/eventfold/eventfold"
)

// Config configures an Orchestrator. The zero value is ready to use.
type Config struct {
	// MaxAttempts bounds how often one command runs when it hits a
	// retryable conflict (a wrong expected version, a serialization failure,
	// a deadlock, a concurrent duplicate of its command id). 1 disables
	// retries. Defaults to 10.
	MaxAttempts int
	// BaseBackoff is the wait before the second attempt; it doubles per
	// attempt up to MaxBackoff. Each wait is drawn at random from
	// [d/2, d] (jitter), so that contending dispatchers spread out.
	// Defaults to 2ms.
	BaseBackoff time.Duration
	// MaxBackoff caps one wait between attempts. Defaults to 250ms.
	MaxBackoff time.Duration
	// Retryable decides whether an error from an attempt is worth another
	// attempt. Defaults to IsRetryable.
	Retryable func(error) bool
	// Logger receives retry and after-commit diagnostics, and is what the
	// Logging middleware uses when given nil. Defaults to a logger that
	// discards everything.
	Logger *slog.Logger
	// AfterCommit, when set, is called after every successful commit with
	// the committed events (not for idempotent replays, which commit
	// nothing new). The listener uses it to send a wake-up. It runs in the
	// dispatching goroutine: keep it short and non-blocking.
	AfterCommit func(ctx context.Context, events []eventfold.Event)
	// AllowUnknownFields makes DispatchJSON accept payload fields that the
	// command type does not have. Defaults to false: unknown fields are
	// rejected, so that a client's typo is an error, not a silent no-op.
	AllowUnknownFields bool
	// Scope, when set, derives every command's idempotency scope from its
	// envelope (e.g. the tenant or user the edge put into Metadata),
	// overriding Envelope.Scope, so that no entry point can forget it. See
	// Envelope.Scope. Defaults to nil: Envelope.Scope as given.
	Scope func(Envelope) string
	// GroupCommit, when set, lets concurrent dispatches share transactions
	// (see GroupCommitConfig). Defaults to nil: one transaction per command.
	GroupCommit *GroupCommitConfig
	// NoCommitMarkers turns commit markers off. With group commit, every
	// transaction writes a random, time-ordered marker row (migration
	// 00009) on PostgreSQL, MySQL/MariaDB and SQL Server: when the
	// connection dies after COMMIT was sent, the orchestrator looks the
	// marker up on a new connection and answers each caller with the truth
	// (its committed events, or a safe re-run) instead of running a
	// committed batch twice. Without markers a lost COMMIT reply is
	// answered with *CommitError. SQLite needs and writes no markers.
	NoCommitMarkers bool
	// DispatchCommitMarkers makes a Dispatch without group commit write a
	// commit marker too, so that a lost COMMIT reply is answered with the
	// events (or a retry) instead of *CommitError. It costs one small
	// insert per command, which this project measured as a noticeable
	// share of a one-event command's cost at 16 clients, so it is off by
	// default; with group commit, markers are on for every transaction.
	// Defaults to false.
	DispatchCommitMarkers bool
	// ResolveTimeout bounds how long the orchestrator keeps trying to look
	// up a commit marker after a failed COMMIT (the database may be
	// restarting). Past it the caller gets a *CommitError matching
	// ErrCommitOutcomeUnknown. Defaults to 30s.
	ResolveTimeout time.Duration
	// CommitMarkerRetention is how long commit markers are kept; they are
	// only needed while a failed COMMIT is resolved. Defaults to 10 minutes.
	CommitMarkerRetention time.Duration
	// Observer, when set, is told about every dispatch, step, failed
	// attempt and group commit (tracing and metrics; see package otelfold).
	// Defaults to nil: nothing is observed.
	Observer Observer
}

func (c Config) withDefaults() Config {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = 2 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = c.BaseBackoff
	}
	if c.Retryable == nil {
		c.Retryable = IsRetryable
	}
	if c.ResolveTimeout <= 0 {
		c.ResolveTimeout = 30 * time.Second
	}
	if c.CommitMarkerRetention <= 0 {
		c.CommitMarkerRetention = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}
