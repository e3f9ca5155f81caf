package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Dispatcher dispatches one command; Orchestrator.Dispatch is one, and so
// is every middleware-wrapped stage of it.
type Dispatcher func(ctx context.Context, cmd Command) (*Result, error)

// Middleware wraps a Dispatcher, Redux style: it may inspect or change the
// command, refuse it (return an error without calling next), or observe
// the result. Middleware runs outside the transaction and around all
// retries, once per Dispatch.
//
// Typical uses and where they go:
//   - authentication/authorisation: check Envelope.Metadata (e.g. "user")
//     and refuse with your own error; see Before.
//   - validation: see ValidateCommands (payloads with a Validate method).
//   - metrics: time next(ctx, cmd), count by cmd.Name and outcome.
//   - tracing: start a span, put it in ctx, call next, end it; handlers and
//     reducers get that ctx.
type Middleware func(next Dispatcher) Dispatcher

// Use adds middleware. The first added is the outermost: with Use(a, b),
// a sees the command first and the result last.
func (o *Orchestrator[TTx]) Use(mws ...Middleware) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mws = append(o.mws, mws...)
	chain := o.innermost()
	for i := len(o.mws) - 1; i >= 0; i-- {
		chain = o.mws[i](chain)
	}
	o.chain = chain
}

// Before returns middleware that calls check before dispatching and
// refuses the command when check returns an error (returned as is). Use it
// for authorisation and validation rules that need no transaction.
func Before(check func(ctx context.Context, cmd Command) error) Middleware {
	return func(next Dispatcher) Dispatcher {
		return func(ctx context.Context, cmd Command) (*Result, error) {
			if err := check(ctx, cmd); err != nil {
				return nil, err
			}
			return next(ctx, cmd)
		}
	}
}

// Validator is implemented by command payloads that can check themselves.
type Validator interface {
	Validate() error
}

// ValidateCommands returns middleware that calls Validate on every payload
// that implements Validator and refuses the command when it fails. The
// error matches ErrInvalidCommand and unwraps to Validate's error.
func ValidateCommands() Middleware {
	return Before(func(_ context.Context, cmd Command) error {
		if v, ok := cmd.Payload.(Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrInvalidCommand, cmd.Name, err)
			}
		}
		return nil
	})
}

// Logging returns middleware that logs every dispatch with slog: at Info
// for committed and duplicate commands, for commands a handler rejected
// (Reject: domain errors are normal outcomes), invalid commands and
// reused idempotency keys; at Error for everything else (any other handler
// error, reducer failures, database errors, exhausted retries). A nil
// logger uses slog.Default().
func Logging(logger *slog.Logger) Middleware {
	if logger == nil {
		logger = slog.Default()
	}
	return func(next Dispatcher) Dispatcher {
		return func(ctx context.Context, cmd Command) (*Result, error) {
			start := time.Now()
			res, err := next(ctx, cmd)
			attrs := []slog.Attr{
				slog.String("command", cmd.Name),
				slog.Duration("elapsed", time.Since(start)),
			}
			if cmd.Envelope.ID != "" {
				attrs = append(attrs, slog.String("command_id", cmd.Envelope.ID))
			}
			if err != nil {
				level := slog.LevelError
				if errors.Is(err, ErrRejected) || errors.Is(err, ErrInvalidCommand) || errors.Is(err, ErrIdempotencyKeyReused) {
					level = slog.LevelInfo
				}
				attrs = append(attrs, slog.String("error", err.Error()))
				logger.LogAttrs(ctx, level, "command failed", attrs...)
				return nil, err
			}
			if cmd.Envelope.ID == "" {
				attrs = append(attrs, slog.String("command_id", res.CommandID))
			}
			attrs = append(attrs,
				slog.Int("events", len(res.Events)),
				slog.Int("attempts", res.Attempts),
				slog.Bool("duplicate", res.Duplicate))
			logger.LogAttrs(ctx, slog.LevelInfo, "command dispatched", attrs...)
			return res, nil
		}
	}
}
