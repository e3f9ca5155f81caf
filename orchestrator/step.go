package orchestrator

import "context"

// Step tells which part of a dispatch is running. Handlers, appends and
// reducers get a ctx carrying it, so that code below them (a tracing span,
// an SQL logger, a database/sql driver wrapper) can attribute its work
// without the orchestrator knowing about it.
type Step struct {
	// Kind is "lookup" (idempotency lookup), "handler", "append",
	// "reducer" or "record" (idempotency record).
	Kind string
	// Name is the command name for "handler", the stream for "append",
	// the reducer's name for "reducer".
	Name string
	// EventType is the event being appended or reduced.
	EventType string
}

type stepKey struct{}

// StepFrom returns the dispatch step ctx belongs to.
func StepFrom(ctx context.Context) (Step, bool) {
	s, ok := ctx.Value(stepKey{}).(Step)
	return s, ok
}

func withStep(ctx context.Context, s Step) context.Context {
	return context.WithValue(ctx, stepKey{}, s)
}
