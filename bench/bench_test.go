package bench

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

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
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Results) != 3 || rep.Results[0].Mode != "raw" || rep.Results[1].Mode != "raw-same-sql" || rep.Results[2].Mode != "dispatch" {
			t.Fatalf("results %+v", rep.Results)
		}
		for _, r := range rep.Results {
			if r.Commands == 0 || r.Errors != 0 || r.CommandsPerSecond <= 0 || r.EventsPerSecond != 2*r.CommandsPerSecond {
				t.Fatalf("%s: %+v", r.Mode, r)
			}
			if r.P50ms > r.P95ms || r.P95ms > r.P99ms {
				t.Fatalf("%s: percentiles out of order: %+v", r.Mode, r)
			}
		}
		if _, ok := rep.Ratios["dispatch/raw-same-sql"]; !ok {
			t.Fatalf("no dispatch/raw-same-sql ratio: %v", rep.Ratios)
		}
		if _, ok := rep.Ratios["dispatch/raw"]; !ok {
			t.Fatalf("no dispatch/raw ratio: %v", rep.Ratios)
		}
		b, _ := json.Marshal(rep)
		for _, key := range []string{"commands_per_second", "events_per_second", "p50_ms", "p95_ms", "p99_ms"} {
			if !json.Valid(b) || !strings.Contains(string(b), `"`+key+`"`) {
				t.Fatalf("JSON report lacks %s: %s", key, b)
			}
		}
	})
}
