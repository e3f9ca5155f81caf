package esctl

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/otelfold"
)

// manualTelemetry is a pipeline whose metrics a test reads.
func manualTelemetry(t *testing.T) (*Options, *sdkmetric.ManualReader, *tracetest.SpanRecorder) {
	reader := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	inst, err := otelfold.New(&otelfold.Config{TracerProvider: tp, MeterProvider: mp})
	require.NoError(t, err)
	opts := &Options{hooks: &testHooks{telemetry: func(context.Context, func(string) string) (*Telemetry, error) {
		return &Telemetry{Inst: inst, Metrics: http.NotFoundHandler()}, nil
	}}}
	return opts, reader, spans
}

func counter(t *testing.T, r *sdkmetric.ManualReader, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				var n int64
				for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
					n += p.Value
				}
				return n
			}
		}
	}
	return 0
}

// TestArchiveAndReplayProgressMetrics: with --metrics-addr, archive counts
// the events it moves and replay the events it applies, in a span per page
// linked to the spans that appended them.
func TestArchiveAndReplayProgressMetrics(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	evs := archiveFixture(t, dsn, 7)
	opts, reader, spans := manualTelemetry(t)
	file := filepath.Join(t.TempDir(), "old.jsonl.gz")
	r := run(t, *opts, dsn, "--metrics-addr", "127.0.0.1:0", "archive", "--before", jsonInt(evs[5].GlobalPosition), "--to", file, "--batch", "2")
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stderr, "metrics at http://127.0.0.1:")
	require.Equal(t, int64(5), counter(t, reader, "eventfold.archive.events"))

	var applied int
	opts.Replayer = ReplayFuncs{ApplyFunc: func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		applied++
		return nil
	}}
	r = run(t, *opts, dsn, "--metrics-addr", "127.0.0.1:0", "replay", "--from", jsonInt(evs[5].GlobalPosition), "--no-reset")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, 2, applied)
	require.Equal(t, int64(2), counter(t, reader, "eventfold.replay.events"))
	var pages int
	for _, s := range spans.Ended() {
		if s.Name() == "replay" {
			pages++
		}
	}
	require.Equal(t, 1, pages)
}

// TestMetricsAddrRefused: an address that cannot be listened on is an
// error before any command runs; EVENTFOLD_METRICS_ADDR is read too.
func TestMetricsAddrRefused(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "x.db")
	r := run(t, Options{}, dsn, "--metrics-addr", "not-an-address", "migrate", "status")
	require.Equal(t, ExitError, r.code)
	require.Contains(t, r.stderr, "metrics: listen on not-an-address")
	env := func(k string) string {
		if k == "EVENTFOLD_METRICS_ADDR" {
			return "256.0.0.1:1"
		}
		return ""
	}
	r = run(t, Options{Getenv: env}, dsn, "migrate", "status")
	require.Equal(t, ExitError, r.code)
	require.True(t, strings.Contains(r.stderr, "256.0.0.1:1"), r.stderr)
}
