package otelfold_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/otelfold"
)

// bundle is one test's telemetry pipeline (an in-memory span recorder and
// a manual metric reader) and an orchestrator over a fresh database.
type bundle struct {
	ctx    context.Context
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	inst   *otelfold.Instrumentation
	store  *eventfold.Store[*sql.Tx]
	o      *orchestrator.Orchestrator[*sql.Tx]
	// conflictOnce makes the next "Touch" handler fail its first attempt
	// with a wrong expected version.
	conflictOnce atomic.Bool
}

// touch is the test command: append one "Touched" event to Stream.
type touch struct {
	Stream string `json:"stream"`
	Fail   string `json:"fail,omitempty"` // "reject" or "reducer"
}

func setup(t *testing.T, d eventfold.Dialect, cfg *orchestrator.Config) *bundle {
	t.Helper()
	b := &bundle{ctx: context.Background(), spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(b.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(b.reader))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	inst, err := otelfold.New(&otelfold.Config{TracerProvider: tp, MeterProvider: mp})
	require.NoError(t, err)
	b.inst = inst
	b.store = testdb.SQLStore(t, d)
	if cfg == nil {
		cfg = &orchestrator.Config{}
	}
	cfg.Observer = inst
	cfg.BaseBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	b.o = orchestrator.New(b.store, cfg)
	orchestrator.Handle(b.o, "Touch", func(ctx context.Context, tx *sql.Tx, c touch) ([]orchestrator.Emit, error) {
		if c.Fail == "reject" {
			return nil, orchestrator.Reject(errors.New("not today"))
		}
		expected := eventfold.Any
		if b.conflictOnce.CompareAndSwap(true, false) {
			expected = eventfold.Exact(99) // as if another writer had been first
		}
		return []orchestrator.Emit{{Stream: c.Stream, Expected: expected, Type: "Touched", Data: c}}, nil
	})
	orchestrator.ReduceEvent(b.o, "Touched", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		var c touch
		if err := json.Unmarshal(ev.Data, &c); err != nil {
			return err
		}
		if c.Fail == "reducer" {
			return errors.New("reducer broke")
		}
		return nil
	}, orchestrator.WithName("touches"))
	return b
}

func (b *bundle) dispatch(t *testing.T, c touch) (*orchestrator.Result, error) {
	t.Helper()
	return b.o.Dispatch(b.ctx, orchestrator.Command{Name: "Touch", Payload: c})
}

// byName returns the ended spans called name.
func (b *bundle) byName(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range b.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func (b *bundle) one(t *testing.T, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	ss := b.byName(name)
	require.Len(t, ss, 1, "spans named %q", name)
	return ss[0]
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// collect reads every metric now.
func (b *bundle) collect(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, b.reader.Collect(b.ctx, &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sum adds up a counter's (or up-down counter's, or gauge's) points whose
// attributes include want.
func (b *bundle) sum(t *testing.T, name string, want ...attribute.KeyValue) int64 {
	t.Helper()
	m, ok := b.collect(t)[name]
	if !ok {
		return 0
	}
	var total int64
	match := func(set attribute.Set) bool {
		for _, kv := range want {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				total += p.Value
			}
		}
	case metricdata.Gauge[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				total += p.Value
			}
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				total += int64(p.Count)
			}
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			if match(p.Attributes) {
				total += int64(p.Count)
			}
		}
	default:
		t.Fatalf("metric %s: unexpected data %T", name, m.Data)
	}
	return total
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
