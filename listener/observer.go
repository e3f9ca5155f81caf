package listener

import (
	"context"

	"github.com/eventfold/eventfold"
)

// Observer watches durable subscriptions, for tracing and metrics; package
// otelfold implements it with OpenTelemetry, so that this package links
// none. Options.Observer is nil by default, which costs a nil check per
// event.
type Observer interface {
	// StartHandle is called before a subscription's handler runs for ev
	// (again on every retry); the handler gets the returned ctx, end gets
	// its error.
	StartHandle(ctx context.Context, subscription string, ev eventfold.Event) (context.Context, func(error))
	// Lease is called when this instance starts (held true) or stops
	// driving the subscription.
	Lease(subscription string, held bool)
}

// startHandle tells the observer, if any, that a handler starts.
func (s *Subscription[TTx]) startHandle(ctx context.Context, ev eventfold.Event) (context.Context, func(error)) {
	if s.o.Observer == nil {
		return ctx, noEnd
	}
	return s.o.Observer.StartHandle(ctx, s.name, ev)
}

// noEnd ends what nobody observes, without allocating a closure.
var noEnd = func(error) {}
