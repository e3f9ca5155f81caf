// Package otelfold instruments eventfold with OpenTelemetry: traces and
// metrics from the HTTP command through the dispatch, its appends,
// reducers and COMMIT, to a subscription's handler and an SSE push.
//
// It uses the OpenTelemetry API only (trace, metric, propagation); the
// application picks the SDK and exporters (Prometheus, OTLP). The core
// packages (orchestrator, listener, sse) know nothing of it: they call the
// small Observer interfaces that *Instrumentation implements, so a program
// that does not import otelfold links no OpenTelemetry.
//
//	inst, err := otelfold.New(nil) // the global tracer and meter providers
//	orch := orchestrator.New(store, &orchestrator.Config{Observer: inst})
//	sub, _ := listener.New(store, "mailer", h, &listener.Options{Observer: inst})
//	events := sse.New(store, &sse.Config{Observer: inst})
//	mux.Handle("POST /commands/{name}", inst.HTTP(httpapi.New(orch, nil)))
//	_, err = otelfold.ObserveLag(inst, store) // the lag gauge
//
// The trace context travels in each event's metadata as W3C "traceparent"
// (and "tracestate"): a subscription's handler span and an SSE write's span
// continue the trace of the dispatch that appended the event, so one
// request can be followed from the POST to the subscriber.
package otelfold
