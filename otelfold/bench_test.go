package otelfold_test

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/otelfold"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkObservedDispatch is the instrumentation's own CPU cost per
// one-event command (no database): the calls a dispatch makes on its
// Observer, every span sampled and batched to a discarding exporter.
func BenchmarkObservedDispatch(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	defer tp.Shutdown(context.Background())
	inst, err := otelfold.New(&otelfold.Config{TracerProvider: tp, MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	cmd := orchestrator.Command{Name: "Deposit"}
	res := &orchestrator.Result{CommandID: "0193", Attempts: 1, BatchSize: 1, Events: make([]eventfold.Event, 1)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, end := inst.StartDispatch(context.Background(), cmd)
			_, e1 := inst.StartStep(ctx, orchestrator.Step{Kind: "handler", Name: "Deposit"})
			e1(nil)
			actx, e2 := inst.StartStep(ctx, orchestrator.Step{Kind: "append", Name: "account-1", EventType: "Deposited", Events: 1})
			md := map[string]any{"command": "Deposit"}
			inst.EventMetadata(actx, md)
			e2(nil)
			_, e3 := inst.StartStep(ctx, orchestrator.Step{Kind: "reducer", Name: "balances", EventType: "Deposited", Events: 1})
			e3(nil)
			_, e4 := inst.StartStep(ctx, orchestrator.Step{Kind: "commit", Name: "Deposit", Batch: 1})
			e4(nil)
			end(res, nil)
		}
	})
}
