package sse

import (
	"context"
	"net/http"

	"github.com/eventfold/eventfold"
)

// Observer watches the event stream's clients, for tracing and metrics;
// package otelfold implements it with OpenTelemetry, so that this package
// links none. Config.Observer is nil by default, which costs a nil check
// per write.
type Observer interface {
	// Connected is called when a client's stream starts; the returned
	// func is called when it ends, with the error that dropped it (a
	// failed or timed-out write) or nil when the client left or Run
	// stopped.
	Connected(r *http.Request) func(err error)
	// StartSend is called before events are written to a client (ctx is
	// the request's); end gets the write's error.
	StartSend(ctx context.Context, evs []eventfold.Event) func(error)
}
