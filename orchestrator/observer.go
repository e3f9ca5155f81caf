package orchestrator

import "context"

// Observer watches dispatches, for tracing and metrics; package otelfold
// implements it with OpenTelemetry, so that this package links none. Its
// methods run on the dispatching goroutines (or a group committer's): they
// must be safe for concurrent use and quick. Config.Observer is nil by
// default, which costs a nil check per step.
//
// A method that panics panics in a caller's goroutine, never in a group
// committer's: in a group commit, a callback made for one command
// (AttemptFailed, the shared COMMIT's or a batched append's StartStep and
// its end) is recovered there, the batch goes on unchanged (what committed
// stays committed), and the panic is raised in that command's caller once
// it is answered; BatchCommitted's panic goes to the caller of the batch's
// first command. A command with a panic already to raise logs a further
// one with Config.Logger at Error level. Callbacks inside a command's own
// execution (its handler, append and reducer steps, EventMetadata) fail
// the command with the panic, as in a lone Dispatch.
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
