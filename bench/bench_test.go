package bench

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestRunReportsBothModes runs the harness briefly on every available
// dialect and checks the report is complete and consistent; it asserts no
// speed (that is what esctl bench and the benchmarks below are for).
func TestRunReportsBothModes(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		rep, err := Run(context.Background(), Config{
			DSN: testdb.EmptyDSN(t, d), Concurrency: 2, Duration: 300 * time.Millisecond, EventsPerCommand: 2, Raw: true,
		}, nil)
		require.NoError(t, err)
		require.Len(t, rep.Results, 3)
		require.Equal(t, []string{"raw", "raw-same-sql", "dispatch"}, []string{rep.Results[0].Mode, rep.Results[1].Mode, rep.Results[2].Mode})
		for _, r := range rep.Results {
			require.Positive(t, r.Commands, r.Mode)
			require.Zero(t, r.Errors, r.Mode)
			require.Positive(t, r.CommandsPerSecond, r.Mode)
			require.Equal(t, 2*r.CommandsPerSecond, r.EventsPerSecond, r.Mode)
			require.LessOrEqual(t, r.P50ms, r.P95ms, "%s: percentiles out of order", r.Mode)
			require.LessOrEqual(t, r.P95ms, r.P99ms, "%s: percentiles out of order", r.Mode)
		}
		require.Contains(t, rep.Ratios, "dispatch/raw-same-sql")
		require.Contains(t, rep.Ratios, "dispatch/raw")
		b, _ := json.Marshal(rep)
		for _, key := range []string{"commands_per_second", "events_per_second", "p50_ms", "p95_ms", "p99_ms"} {
			require.True(t, json.Valid(b))
			require.Contains(t, string(b), `"`+key+`"`, "JSON report lacks %s", key)
		}
	})
}
