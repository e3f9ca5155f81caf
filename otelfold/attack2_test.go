package otelfold_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
)

// TestAttackUnknownCommandNamesDoNotBecomeMetricSeries: behind httpapi the
// command name is the URL's last segment, chosen by the client. Unknown
// names must not each open a metric series (unbounded label cardinality:
// a client posting to /commands/<random> grows the exporter's memory and
// the metrics backend's bill without limit). They share one label value.
func TestAttackUnknownCommandNamesDoNotBecomeMetricSeries(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	_, err := b.dispatch(t, touch{Stream: "s"})
	require.NoError(t, err)
	for i := range 300 {
		_, err := b.o.Dispatch(b.ctx, orchestrator.Command{Name: fmt.Sprintf("Probe%d-%s", i, strings.Repeat("x", 100)), Payload: touch{Stream: "s"}})
		require.ErrorIs(t, err, orchestrator.ErrUnknownCommand)
	}
	m, ok := b.collect(t)["eventfold.dispatch.duration"]
	require.True(t, ok)
	h, ok := m.Data.(metricdata.Histogram[float64])
	require.True(t, ok)
	names := map[string]bool{}
	for _, p := range h.DataPoints {
		v, _ := p.Attributes.Value("eventfold.command.name")
		names[v.AsString()] = true
	}
	require.True(t, names["Touch"], "a registered command keeps its name: %v", len(names))
	require.LessOrEqual(t, len(names), 3, "%d command label values after 300 unknown names", len(names))
}
