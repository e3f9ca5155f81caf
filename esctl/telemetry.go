package esctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/otelfold"
)

// Telemetry is an OpenTelemetry pipeline for esctl and for services that
// embed it (bankctl serve): a Prometheus exposition handler and, when the
// standard OTEL_* variables ask for it, OTLP export of traces and metrics.
// Inst is the eventfold instrumentation to hand to the orchestrator,
// subscriptions and SSE.
type Telemetry struct {
	// Inst records eventfold's spans and metrics into this pipeline.
	Inst *otelfold.Instrumentation
	// Metrics serves the Prometheus text exposition (mount at /metrics).
	Metrics http.Handler

	tp       *sdktrace.TracerProvider
	mp       *sdkmetric.MeterProvider
	shutdown []func(context.Context) error
}

// StartTelemetry builds the pipeline: metrics always go to the Prometheus
// handler; traces and metrics also go to an OTLP/HTTP collector when
// OTEL_EXPORTER_OTLP_ENDPOINT (or its _TRACES_ or _METRICS_ variant) is
// set, configured by the standard OTEL_EXPORTER_OTLP_* variables;
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the service;
// OTEL_SDK_DISABLED=true records nothing. getenv reads the environment.
// The providers become the global ones, so libraries that use
// otel.GetTracerProvider join in. Call Shutdown to flush.
func StartTelemetry(ctx context.Context, getenv func(string) string) (*Telemetry, error) {
	t := &Telemetry{}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		inst, err := otelfold.New(&otelfold.Config{})
		if err != nil {
			return nil, err
		}
		t.Inst, t.Metrics = inst, http.NotFoundHandler()
		return t, nil
	}
	res, err := resource.Merge(resource.Default(), resource.Environment())
	if err != nil {
		res = resource.Default()
	}
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	mopts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	otlp := getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != ""
	if otlp || getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "" {
		exp, err := otlpmetrichttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP metric exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	if otlp || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
	}
	t.mp = sdkmetric.NewMeterProvider(mopts...)
	t.tp = sdktrace.NewTracerProvider(topts...)
	t.shutdown = append(t.shutdown, t.tp.Shutdown, t.mp.Shutdown)
	otel.SetTracerProvider(t.tp)
	otel.SetMeterProvider(t.mp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if t.Inst, err = otelfold.New(&otelfold.Config{TracerProvider: t.tp, MeterProvider: t.mp}); err != nil {
		return nil, err
	}
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t, nil
}

// Serve serves /metrics on addr until ctx ends; it returns the address it
// listens on (a port of 0 picks one) once it does.
func (t *Telemetry) Serve(ctx context.Context, addr string) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", t.Metrics)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return ln.Addr(), nil
}

// Shutdown flushes and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

// startTelemetry turns the pipeline on for this run of Main, serving
// /metrics on addr when given; stop flushes it.
func (env *Env) startTelemetry(ctx context.Context, addr string) (stop func(), err error) {
	start := StartTelemetry
	if env.opts.hooks != nil && env.opts.hooks.telemetry != nil {
		start = env.opts.hooks.telemetry
	}
	t, err := start(ctx, env.opts.Getenv)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if addr != "" {
		at, err := t.Serve(sctx, addr)
		if err != nil {
			cancel()
			return nil, err
		}
		fmt.Fprintf(env.Stderr, "%s: metrics at http://%s/metrics\n", env.Program, at)
	}
	env.telemetry = t
	return func() {
		cancel()
		fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer fcancel()
		_ = t.Shutdown(fctx)
	}, nil
}

// observeProgress is the telemetry hook of the progress bars: replay and
// archive progress become counters (see otelfold).
func (env *Env) observeProgress(label string, n int64) {
	if env.telemetry == nil {
		return
	}
	switch label {
	case "archive: deleting":
		env.telemetry.Inst.Archived(context.Background(), n)
	}
}

// startReplay is the telemetry hook of replay: a span per page, linked to
// the traces that appended its events, and the replay counter.
func (env *Env) startReplay(ctx context.Context, page []eventfold.Event) (context.Context, func(error)) {
	if env.telemetry == nil {
		return ctx, func(error) {}
	}
	return env.telemetry.Inst.StartReplay(ctx, page)
}

// benchObserver returns the instrumentation bench --otel measures: the
// pipeline of --metrics-addr/OTEL_* when one runs, else a private one that
// samples that share of traces and hands their spans to a batch processor
// whose exporter discards them (the SDK's full cost, no network), with metrics aggregated
// in a Prometheus registry nobody scrapes.
func (env *Env) benchObserver(sample float64) (orchestrator.Observer, func(), error) {
	if env.telemetry != nil {
		return env.telemetry.Inst, func() {}, nil
	}
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(prom))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))), sdktrace.WithBatcher(discardExporter{}))
	inst, err := otelfold.New(&otelfold.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		return nil, nil, err
	}
	return inst, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
		_ = mp.Shutdown(ctx)
	}, nil
}

// discardExporter drops spans: bench measures recording and batching, not
// a collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }
