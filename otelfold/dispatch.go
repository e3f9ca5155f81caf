package otelfold

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
)

// StartDispatch starts the dispatch span (implements orchestrator.Observer).
func (i *Instrumentation) StartDispatch(ctx context.Context, cmd orchestrator.Command) (context.Context, func(*orchestrator.Result, error)) {
	start := time.Now()
	ctx, span := i.tracer.Start(ctx, "dispatch "+cmd.Name, trace.WithAttributes(AttrCommand.String(cmd.Name)))
	return ctx, func(res *orchestrator.Result, err error) {
		outcome := Outcome(res, err)
		cmdAttr := AttrCommand.String(cmd.Name)
		if errors.Is(err, orchestrator.ErrUnknownCommand) {
			// A client may choose the name (httpapi takes it from the
			// URL): one metric series per unknown name would grow without
			// bound. The span keeps the name as an attribute.
			cmdAttr = AttrCommand.String(OtherCommand)
			span.SetName("dispatch " + OtherCommand)
		}
		i.dispatchDuration.Record(ctx, time.Since(start).Seconds(),
			metric.WithAttributes(cmdAttr, AttrOutcome.String(outcome)))
		attrs := []attribute.KeyValue{AttrOutcome.String(outcome)}
		if res != nil {
			attrs = append(attrs, AttrCommandID.String(res.CommandID), AttrAttempts.Int(res.Attempts),
				AttrBatchSize.Int(res.BatchSize), AttrEventCount.Int(len(res.Events)))
			if !res.Duplicate && len(res.Events) > 0 {
				i.appended.Add(ctx, int64(len(res.Events)), metric.WithAttributes(cmdAttr))
			}
		} else if cmd.Envelope.ID != "" {
			attrs = append(attrs, AttrCommandID.String(cmd.Envelope.ID))
		}
		var re *orchestrator.RetriesExhaustedError
		if errors.As(err, &re) {
			attrs = append(attrs, AttrAttempts.Int(re.Attempts))
		}
		span.SetAttributes(attrs...)
		if err != nil {
			span.SetAttributes(AttrErrorType.String(errorType(err)))
			span.RecordError(err)
			if outcome != OutcomeRejected && outcome != OutcomeInvalid {
				// A refused command is a normal answer, like an HTTP 4xx
				// on a server span: recorded, not marked failed.
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
	}
}

// OtherCommand is the AttrCommand value of metrics and the span name
// suffix for a command name with no handler (OpenTelemetry's "_OTHER"
// convention for values outside a known set).
const OtherCommand = "_OTHER"

// Outcome classifies a dispatch's result for AttrOutcome.
func Outcome(res *orchestrator.Result, err error) string {
	switch {
	case err == nil && res != nil && res.Duplicate:
		return OutcomeDuplicate
	case err == nil:
		return OutcomeCommitted
	case errors.Is(err, orchestrator.ErrRejected):
		return OutcomeRejected
	case errors.Is(err, orchestrator.ErrInvalidCommand), errors.Is(err, orchestrator.ErrUnknownCommand),
		errors.Is(err, orchestrator.ErrIdempotencyKeyReused), errors.Is(err, eventfold.ErrInvalidInput):
		return OutcomeInvalid
	case orchestrator.IsRetryable(err):
		return OutcomeConflict
	}
	return OutcomeError
}

// errorType names an error's class for the error.type attribute: a low
// cardinality value, never the message.
func errorType(err error) string {
	switch {
	case errors.Is(err, eventfold.ErrWrongExpectedVersion):
		return "wrong_expected_version"
	case errors.Is(err, eventfold.ErrDuplicateEventID):
		return "duplicate_event_id"
	case errors.Is(err, eventfold.ErrTransient):
		return "transient"
	case errors.Is(err, orchestrator.ErrRejected):
		return "rejected"
	case errors.Is(err, orchestrator.ErrInvalidCommand), errors.Is(err, eventfold.ErrInvalidInput):
		return "invalid_command"
	case errors.Is(err, orchestrator.ErrUnknownCommand):
		return "unknown_command"
	case errors.Is(err, orchestrator.ErrIdempotencyKeyReused):
		return "idempotency_key_reused"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	}
	var (
		he *orchestrator.HandlerError
		re *orchestrator.ReducerError
		ce *orchestrator.CommitError
		ae *orchestrator.AppendError
	)
	switch {
	case errors.As(err, &re):
		return "reducer"
	case errors.As(err, &he):
		return "handler"
	case errors.As(err, &ce):
		return "commit"
	case errors.As(err, &ae):
		return "append"
	case orchestrator.IsRetryable(err):
		return "conflict"
	}
	return "_OTHER" // the semantic conventions' fallback value
}

// StartStep starts a child span for a handler, an append, a reducer or a
// COMMIT (implements orchestrator.Observer).
func (i *Instrumentation) StartStep(ctx context.Context, s orchestrator.Step) (context.Context, func(error)) {
	var (
		name  string
		kind  = trace.SpanKindInternal
		attrs []attribute.KeyValue
	)
	switch s.Kind {
	case "handler":
		name = "handle " + s.Name
		attrs = []attribute.KeyValue{AttrCommand.String(s.Name)}
	case "append":
		name, kind = "append", trace.SpanKindProducer
		attrs = []attribute.KeyValue{AttrStream.String(s.Name), AttrEventType.String(s.EventType),
			AttrEventCount.Int(s.Events), AttrExpected.String(s.Expected.String())}
	case "reducer":
		name = "reduce " + s.Name
		attrs = []attribute.KeyValue{AttrReducer.String(s.Name), AttrEventType.String(s.EventType), AttrEventCount.Int(s.Events)}
	case "commit":
		name = "commit"
		attrs = []attribute.KeyValue{AttrCommand.String(s.Name), AttrBatchSize.Int(s.Batch)}
	default:
		name = s.Kind + " " + s.Name
	}
	ctx, span := i.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			span.SetAttributes(AttrErrorType.String(errorType(err)))
			recordError(span, err)
		}
		span.End()
	}
}

// AttemptFailed counts retries and conflicts and adds an event to the
// dispatch span (implements orchestrator.Observer).
func (i *Instrumentation) AttemptFailed(ctx context.Context, cmd orchestrator.Command, attempt int, err error, retry bool) {
	cmdAttr := AttrCommand.String(cmd.Name)
	et := AttrErrorType.String(errorType(err))
	if retry {
		i.retries.Add(ctx, 1, metric.WithAttributes(cmdAttr, et))
	}
	if orchestrator.IsRetryable(err) {
		i.conflicts.Add(ctx, 1, metric.WithAttributes(cmdAttr, et))
	}
	trace.SpanFromContext(ctx).AddEvent("attempt failed", trace.WithAttributes(
		AttrAttempts.Int(attempt), et, attribute.Bool("eventfold.dispatch.retry", retry),
		attribute.String("exception.message", err.Error())))
}

// BatchCommitted records a group-commit batch's size (implements
// orchestrator.Observer).
func (i *Instrumentation) BatchCommitted(ctx context.Context, commands int) {
	i.batchSize.Record(ctx, int64(commands))
}

// EventMetadata writes the trace context of ctx (the append's span) into
// an event's metadata, replacing any the caller supplied, so that a client
// cannot attach its events to someone else's trace through Metadata
// (implements orchestrator.Observer).
func (i *Instrumentation) EventMetadata(ctx context.Context, md map[string]any) {
	for _, k := range traceKeys {
		delete(md, k)
	}
	i.prop.Inject(ctx, metadataCarrier(md))
}
