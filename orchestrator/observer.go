package orchestrator

import "context"

// Observer watches dispatches, for tracing and metrics; package otelfold
// implements it with OpenTelemetry, so that this package links none. Its
// methods run on the dispatching goroutines (or a group committer's): they
// must be safe for concurrent use and quick. Config.Observer is nil by
// default, which costs a nil check per step.
type Observer interface {
	// StartDispatch is called when Dispatch begins, before the middleware.
	// The returned ctx is what middleware, handler and reducers see; end is
	// called once, with what Dispatch returns.
	StartDispatch(ctx context.Context, cmd Command) (context.Context, func(*Result, error))
	// StartStep is called when a handler, an append, a reducer or a COMMIT
	// starts (Step.Kind "handler", "append", "reducer", "commit"); the
	// step runs with the returned ctx and end gets its error.
	StartStep(ctx context.Context, s Step) (context.Context, func(error))
	// AttemptFailed is called after every failed attempt of a command,
	// with retry true when it is run again.
	AttemptFailed(ctx context.Context, cmd Command, attempt int, err error, retry bool)
	// BatchCommitted is called after a group-commit transaction of
	// several commands committed, with how many committed in it.
	BatchCommitted(ctx context.Context, commands int)
	// EventMetadata may add keys to the metadata of an event about to be
	// appended (the trace context: W3C "traceparent"); ctx is the append
	// step's. Keys it sets win over the caller's metadata, the handler's
	// Emit.Metadata wins over them.
	EventMetadata(ctx context.Context, md map[string]any)
}

// noEnd ends a step nobody observes; a package-level value, so that an
// unobserved step allocates no closure.
var noEnd = func(error) {}

// step marks ctx with s and tells the observer, if any.
func (o *Orchestrator[TTx]) step(ctx context.Context, s Step) (context.Context, func(error)) {
	ctx = withStep(ctx, s)
	if o.cfg.Observer == nil {
		return ctx, noEnd
	}
	return o.cfg.Observer.StartStep(ctx, s)
}

// attemptFailed tells the observer, if any, about a failed attempt.
func (o *Orchestrator[TTx]) attemptFailed(ctx context.Context, cmd Command, attempt int, err error, retry bool) {
	if o.cfg.Observer != nil {
		o.cfg.Observer.AttemptFailed(ctx, cmd, attempt, err, retry)
	}
}
