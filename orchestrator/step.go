package orchestrator

import (
	"context"

	"github.com/eventfold/eventfold"
)

// Step tells which part of a dispatch is running. Handlers, appends and
// reducers get a ctx carrying it, so that code below them (a tracing span,
// an SQL logger, a database/sql driver wrapper) can attribute its work
// without the orchestrator knowing about it.
type Step struct {
	// Kind is "lookup" (idempotency lookup), "handler", "append",
	// "reducer", "record" (idempotency record) or "commit" (seen by an
	// Observer only).
	Kind string
	// Name is the command name for "handler", the stream for "append",
	// the reducer's name for "reducer".
	Name string
	// EventType is the event being appended or reduced.
	EventType string
	// Events is how many events an "append" appends or a "reducer" gets.
	Events int
	// Expected is an "append"'s expected version.
	Expected eventfold.ExpectedVersion
	// Batch is how many commands a "commit" commits (1 without group
	// commit).
	Batch int
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
