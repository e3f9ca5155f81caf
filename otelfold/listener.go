package otelfold

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
)

// StartHandle starts a subscription handler's span, a child of the span
// that appended ev (implements listener.Observer).
func (i *Instrumentation) StartHandle(ctx context.Context, subscription string, ev eventfold.Event) (context.Context, func(error)) {
	start := time.Now()
	ctx = i.EventContext(ctx, ev)
	ctx, span := i.tracer.Start(ctx, "process "+subscription, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrMsgSystem.String("eventfold"), attrMsgOperation.String("process"),
			AttrSubscription.String(subscription), attrMsgID.String(ev.ID),
			AttrStream.String(ev.StreamID), AttrEventType.String(ev.Type), AttrPosition.Int64(ev.GlobalPosition)))
	return ctx, func(err error) {
		attrs := []attribute.KeyValue{attrMsgSystem.String("eventfold"), attrMsgOperation.String("process"), AttrSubscription.String(subscription)}
		if err != nil {
			// A handler's own error has no class known here.
			attrs = append(attrs, AttrErrorType.String("_OTHER"))
			recordError(span, err)
		}
		i.processDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
		span.End()
	}
}

// Lease tracks the lease-held gauge (implements listener.Observer).
func (i *Instrumentation) Lease(subscription string, held bool) {
	d := int64(-1)
	if held {
		d = 1
	}
	i.leaseHeld.Add(context.Background(), d, metric.WithAttributes(AttrSubscription.String(subscription)))
}

// Connected counts an SSE client (implements sse.Observer).
func (i *Instrumentation) Connected(r *http.Request) func(error) {
	ctx := r.Context()
	i.sseClients.Add(ctx, 1)
	return func(err error) {
		i.sseClients.Add(context.WithoutCancel(ctx), -1)
		if err != nil {
			i.sseDropped.Add(context.WithoutCancel(ctx), 1)
		}
	}
}

// maxLinks bounds the links of one span (the SDK's default limit is 128).
const maxLinks = 64

// StartSend starts the span of one write to an SSE client: a child of the
// span that appended the first event, linked to the others' (implements
// sse.Observer).
func (i *Instrumentation) StartSend(ctx context.Context, evs []eventfold.Event) func(error) {
	i.sseSent.Add(ctx, int64(len(evs)))
	var links []trace.Link
	for j, ev := range evs {
		sc := i.eventSpanContext(ev)
		if !sc.IsValid() {
			continue
		}
		if j == 0 {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			continue
		}
		if len(links) < maxLinks {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	attrs := []attribute.KeyValue{AttrEventCount.Int(len(evs))}
	if len(evs) > 0 {
		attrs = append(attrs, AttrPosition.Int64(evs[len(evs)-1].GlobalPosition))
	}
	_, span := i.tracer.Start(ctx, "sse send", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(links...), trace.WithAttributes(attrs...))
	return func(err error) {
		if err != nil {
			recordError(span, err)
		}
		span.End()
	}
}

// ObserveLag registers the subscription lag gauges for every durable
// subscription of store, read from the checkpoints and the head at each
// collection (bounded by 5s): eventfold.subscription.lag, how far the
// checkpoint is behind the head, and eventfold.subscription.held_back, how
// far committed events reach beyond what may be read yet (on PostgreSQL a
// running transaction holds the read horizon back; lag stays 0 then, and
// only held_back shows the subscription is behind). Both are in events
// where positions are dense (SQLite, SQL Server) and in position space
// elsewhere (PostgreSQL, MySQL/MariaDB since migration 00015: a rolled-back
// append leaves a hole): AttrLagUnit says which. Unregister the result to
// stop.
func ObserveLag[TTx any](i *Instrumentation, store *eventfold.Store[TTx]) (metric.Registration, error) {
	unit := "positions"
	if store.Ops().Capabilities().DensePositions {
		unit = "events"
	}
	lag, err := i.meter.Int64ObservableGauge("eventfold.subscription.lag", metric.WithUnit("{event}"),
		metric.WithDescription("How far a durable subscription's checkpoint is behind the head (events, or positions: see eventfold.lag.unit)."))
	if err != nil {
		return nil, err
	}
	held, err := i.meter.Int64ObservableGauge("eventfold.subscription.held_back", metric.WithUnit("{event}"),
		metric.WithDescription("How far committed events reach beyond what a durable subscription may read yet, because a running transaction holds the read horizon back (events, or positions: see eventfold.lag.unit)."))
	if err != nil {
		return nil, err
	}
	return i.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		cps, err := listener.Checkpoints(ctx, store)
		if err != nil {
			return err
		}
		for _, cp := range cps {
			attrs := metric.WithAttributes(AttrSubscription.String(cp.Name), AttrLagUnit.String(unit))
			o.ObserveInt64(lag, cp.Lag, attrs)
			o.ObserveInt64(held, cp.HeldBack, attrs)
		}
		return nil
	}, lag, held)
}

// ObserveNotifier registers the NOTIFY wake-up counters of n:
// eventfold.notify.sent (notifications sent to the database) and
// eventfold.notify.coalesced (wake-ups that joined one already due).
func (i *Instrumentation) ObserveNotifier(n *listener.Notifier) (metric.Registration, error) {
	sent, err := i.meter.Int64ObservableCounter("eventfold.notify.sent", metric.WithUnit("{notification}"),
		metric.WithDescription("Wake-up hints sent to listening processes."))
	if err != nil {
		return nil, err
	}
	coalesced, err := i.meter.Int64ObservableCounter("eventfold.notify.coalesced", metric.WithUnit("{notification}"),
		metric.WithDescription("Wake-ups that joined a notification already due instead of sending their own."))
	if err != nil {
		return nil, err
	}
	return i.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(sent, int64(n.Sent()))
		o.ObserveInt64(coalesced, int64(n.Coalesced()))
		return nil
	}, sent, coalesced)
}

// StartReplay starts the span of one page of a read-model replay, linked
// to the spans that appended its events (a replay is its own trace), and
// counts the page's events in eventfold.replay.events.
func (i *Instrumentation) StartReplay(ctx context.Context, evs []eventfold.Event) (context.Context, func(error)) {
	links := make([]trace.Link, 0, min(len(evs), maxLinks))
	for _, ev := range evs {
		if len(links) == maxLinks {
			break
		}
		if sc := i.eventSpanContext(ev); sc.IsValid() {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	attrs := []attribute.KeyValue{AttrEventCount.Int(len(evs))}
	if len(evs) > 0 {
		attrs = append(attrs, attribute.Int64("eventfold.replay.from", evs[0].GlobalPosition),
			attribute.Int64("eventfold.replay.through", evs[len(evs)-1].GlobalPosition))
	}
	ctx, span := i.tracer.Start(ctx, "replay", trace.WithLinks(links...), trace.WithAttributes(attrs...))
	return ctx, func(err error) {
		if err != nil {
			recordError(span, err)
		} else {
			i.replayed.Add(ctx, int64(len(evs)))
		}
		span.End()
	}
}

// Archived counts events moved to an archive file
// (eventfold.archive.events).
func (i *Instrumentation) Archived(ctx context.Context, n int64) {
	i.archived.Add(ctx, n)
}

// HTTP wraps an HTTP handler (the command endpoint, the SSE handler) in a
// server span that continues the caller's trace from its traceparent
// header, so that the dispatch, and through the events every subscriber,
// joins the client's trace.
func (i *Instrumentation) HTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := i.prop.Extract(r.Context(), propagationHeader(r.Header))
		route := r.Pattern
		name := r.Method
		if route != "" {
			name = route // already "POST /commands/{name}" with a method
		}
		ctx, span := i.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
		defer span.End()
		if route != "" {
			span.SetAttributes(attribute.String("http.route", route))
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))
		status := sw.status()
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, strconv.Itoa(status))
			span.SetAttributes(AttrErrorType.String(strconv.Itoa(status)))
		}
	})
}

// statusWriter remembers the response status; Unwrap keeps
// http.ResponseController (flushes, deadlines) working through it.
type statusWriter struct {
	http.ResponseWriter
	once sync.Once
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.once.Do(func() { w.code = code })
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { w.code = http.StatusOK })
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	w.once.Do(func() { w.code = http.StatusOK })
	return w.code
}
