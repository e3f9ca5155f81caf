package otelfold

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/orchestrator"
)

// ScopeName is the instrumentation scope of every span and metric.
const ScopeName = "github.com/eventfold/eventfold/otelfold"

// Config configures an Instrumentation. The zero value is usable.
type Config struct {
	// TracerProvider makes the spans. Defaults to otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider makes the metrics. Defaults to otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes the trace context into event metadata and reads it
	// from events and HTTP requests. Defaults to W3C Trace Context
	// (propagation.TraceContext), not the global propagator, whose default
	// propagates nothing.
	Propagator propagation.TextMapPropagator
}

// Instrumentation records eventfold's traces and metrics. It implements
// orchestrator.Observer, listener.Observer and sse.Observer: assign it to
// the Observer field of their configs. Safe for concurrent use.
type Instrumentation struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	meter  metric.Meter

	dispatchDuration metric.Float64Histogram
	retries          metric.Int64Counter
	conflicts        metric.Int64Counter
	batchSize        metric.Int64Histogram
	appended         metric.Int64Counter
	processDuration  metric.Float64Histogram
	leaseHeld        metric.Int64UpDownCounter
	sseClients       metric.Int64UpDownCounter
	sseDropped       metric.Int64Counter
	sseSent          metric.Int64Counter
	replayed         metric.Int64Counter
	archived         metric.Int64Counter
}

var (
	_ orchestrator.Observer = (*Instrumentation)(nil)
	_ listener.Observer     = (*Instrumentation)(nil)
	_ sse.Observer          = (*Instrumentation)(nil)
)

// Attribute keys. OpenTelemetry semantic-convention names where one exists
// (error.type, messaging.*, http.*), eventfold.* otherwise.
const (
	AttrCommand      = attribute.Key("eventfold.command.name")
	AttrCommandID    = attribute.Key("eventfold.command.id")
	AttrOutcome      = attribute.Key("eventfold.dispatch.outcome")
	AttrAttempts     = attribute.Key("eventfold.dispatch.attempts")
	AttrBatchSize    = attribute.Key("eventfold.dispatch.batch_size")
	AttrStream       = attribute.Key("eventfold.stream")
	AttrEventType    = attribute.Key("eventfold.event.type")
	AttrEventCount   = attribute.Key("eventfold.event.count")
	AttrExpected     = attribute.Key("eventfold.expected_version")
	AttrReducer      = attribute.Key("eventfold.reducer")
	AttrPosition     = attribute.Key("eventfold.event.position")
	AttrSubscription = attribute.Key("messaging.consumer.group.name")
	AttrLagUnit      = attribute.Key("eventfold.lag.unit")
	AttrErrorType    = attribute.Key("error.type")
	attrMsgSystem    = attribute.Key("messaging.system")
	attrMsgOperation = attribute.Key("messaging.operation.type")
	attrMsgID        = attribute.Key("messaging.message.id")
)

// Outcomes of a dispatch (AttrOutcome).
const (
	OutcomeCommitted = "committed" // events committed (or none needed)
	OutcomeDuplicate = "duplicate" // an idempotent replay: nothing ran
	OutcomeRejected  = "rejected"  // the handler refused it (orchestrator.Reject)
	OutcomeInvalid   = "invalid"   // bad input, unknown command, reused key
	OutcomeConflict  = "conflict"  // a version conflict or transient error left after the retries
	OutcomeError     = "error"     // anything else
)

// New returns an Instrumentation; cfg may be nil.
func New(cfg *Config) (*Instrumentation, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	i := &Instrumentation{
		tracer: c.TracerProvider.Tracer(ScopeName),
		prop:   c.Propagator,
		meter:  c.MeterProvider.Meter(ScopeName),
	}
	m := i.meter
	var errs []error
	add := func(err error) { errs = append(errs, err) }
	var err error
	i.dispatchDuration, err = m.Float64Histogram("eventfold.dispatch.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of Dispatch, middleware and retries included, by command and outcome."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	add(err)
	i.retries, err = m.Int64Counter("eventfold.dispatch.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Attempts of a command that failed and were run again."))
	add(err)
	i.conflicts, err = m.Int64Counter("eventfold.dispatch.conflicts", metric.WithUnit("{conflict}"),
		metric.WithDescription("Attempts that failed with a retryable conflict (wrong expected version, serialization failure, deadlock, concurrent duplicate), retried or not."))
	add(err)
	i.batchSize, err = m.Int64Histogram("eventfold.group_commit.batch.size", metric.WithUnit("{command}"),
		metric.WithDescription("Commands committed per group-commit transaction of more than one command."),
		metric.WithExplicitBucketBoundaries(1, 2, 4, 8, 16, 32, 64))
	add(err)
	i.appended, err = m.Int64Counter("eventfold.events.appended", metric.WithUnit("{event}"),
		metric.WithDescription("Events committed by dispatches (idempotent replays excluded)."))
	add(err)
	i.processDuration, err = m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a subscription handler's call for one event."),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	add(err)
	i.leaseHeld, err = m.Int64UpDownCounter("eventfold.subscription.lease.held", metric.WithUnit("{lease}"),
		metric.WithDescription("1 while this process holds the subscription's lease and drives it."))
	add(err)
	i.sseClients, err = m.Int64UpDownCounter("eventfold.sse.clients", metric.WithUnit("{client}"),
		metric.WithDescription("SSE clients connected."))
	add(err)
	i.sseDropped, err = m.Int64Counter("eventfold.sse.clients.dropped", metric.WithUnit("{client}"),
		metric.WithDescription("SSE clients disconnected by the server: a write failed or timed out."))
	add(err)
	i.sseSent, err = m.Int64Counter("eventfold.sse.events.sent", metric.WithUnit("{event}"),
		metric.WithDescription("Events written to SSE clients."))
	add(err)
	i.replayed, err = m.Int64Counter("eventfold.replay.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events applied by read-model replays."))
	add(err)
	i.archived, err = m.Int64Counter("eventfold.archive.events", metric.WithUnit("{event}"),
		metric.WithDescription("Events moved to archive files."))
	add(err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("otelfold: create instruments: %w", err)
	}
	return i, nil
}

// Meter returns the meter the instruments come from, for callbacks of
// one's own.
func (i *Instrumentation) Meter() metric.Meter { return i.meter }

// Tracer returns the tracer the spans come from.
func (i *Instrumentation) Tracer() trace.Tracer { return i.tracer }

// metadataCarrier reads and writes the trace context keys of event
// metadata.
type metadataCarrier map[string]any

func (c metadataCarrier) Get(key string) string {
	s, _ := c[key].(string)
	return s
}

func (c metadataCarrier) Set(key, value string) { c[key] = value }

func (c metadataCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// traceKeys are the metadata keys the W3C propagator uses.
var traceKeys = []string{"traceparent", "tracestate"}

// EventContext returns ctx with the trace context stored in ev's
// metadata as its remote parent (ctx unchanged when ev carries none).
func (i *Instrumentation) EventContext(ctx context.Context, ev eventfold.Event) context.Context {
	sc := i.eventSpanContext(ev)
	if !sc.IsValid() {
		return ctx
	}
	return trace.ContextWithRemoteSpanContext(ctx, sc)
}

// eventSpanContext reads the span context from ev's metadata.
func (i *Instrumentation) eventSpanContext(ev eventfold.Event) trace.SpanContext {
	if len(ev.Metadata) == 0 || !jsonHasTraceparent(ev.Metadata) {
		return trace.SpanContext{}
	}
	var md struct {
		Traceparent string `json:"traceparent"`
		Tracestate  string `json:"tracestate"`
	}
	if err := json.Unmarshal(ev.Metadata, &md); err != nil || md.Traceparent == "" {
		return trace.SpanContext{}
	}
	c := metadataCarrier{"traceparent": md.Traceparent}
	if md.Tracestate != "" {
		c["tracestate"] = md.Tracestate
	}
	return trace.SpanContextFromContext(i.prop.Extract(context.Background(), c))
}

// jsonHasTraceparent is a cheap pre-check before decoding metadata.
func jsonHasTraceparent(b []byte) bool {
	return bytes.Contains(b, []byte(`"traceparent"`))
}

// recordError records err on span and marks the span failed.
func recordError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

// propagationHeader adapts http.Header to the propagation carrier.
func propagationHeader(h http.Header) propagation.HeaderCarrier { return propagation.HeaderCarrier(h) }
