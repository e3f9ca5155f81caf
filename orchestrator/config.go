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
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}
