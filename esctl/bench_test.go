package esctl

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

func TestBenchJSON(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "2", "--raw", "--group-commit",
		"--workload", "all", "--replay", "400", "--json")
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if rep.Dispatch == nil || len(rep.Dispatch.Results) != 4 {
		t.Fatalf("dispatch results: %+v", rep.Dispatch)
	}
	modes := map[string]bool{}
	for _, r := range rep.Dispatch.Results {
		modes[r.Mode] = true
		if r.Commands == 0 || r.CommandsPerSecond <= 0 || r.P99ms < r.P50ms {
			t.Fatalf("result %+v", r)
		}
	}
	if !modes["raw"] || !modes["raw-same-sql"] || !modes["dispatch"] || !modes["dispatch-group-commit"] {
		t.Fatalf("modes %v", modes)
	}
	if _, ok := rep.Dispatch.Ratios["dispatch/raw"]; !ok {
		t.Fatalf("ratios %v", rep.Dispatch.Ratios)
	}
	// Per size, a per-event and a batch-reducer replay.
	if len(rep.Replay) != 4 || rep.Replay[0].Events != 200 || rep.Replay[2].Events != 400 ||
		rep.Replay[0].Reducer != "per-event" || rep.Replay[1].Reducer != "batch" || rep.Replay[3].EventsPerSecond <= 0 {
		t.Fatalf("replay %+v", rep.Replay)
	}
	for _, key := range []string{`"commands_per_second"`, `"events_per_second"`, `"p50_ms"`, `"p95_ms"`, `"p99_ms"`} {
		if !strings.Contains(out, key) {
			t.Fatalf("JSON lacks %s", key)
		}
	}
}

func TestBenchDeliveryJSON(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "2", "--rate", "100", "--poll", "5ms",
		"--workload", "delivery", "--json")
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if rep.Dispatch != nil || rep.Replay != nil || rep.Subscribers != nil || len(rep.Delivery) != 1 {
		t.Fatalf("delivery workload report: %+v", rep)
	}
	d := rep.Delivery[0]
	if d.Mode != "poll" || d.PollIntervalMS != 5 || d.TargetRate != 100 || d.Committed == 0 || d.Delivered != d.Committed || d.P99ms < d.P50ms {
		t.Fatalf("delivery %+v", d)
	}
	for _, key := range []string{`"delivery"`, `"p50_ms"`, `"p99_ms"`, `"poll_interval_ms"`, `"peak_rss_bytes"`} {
		if !strings.Contains(out, key) {
			t.Fatalf("JSON lacks %s", key)
		}
	}
}

func TestBenchSubscribersText(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "3", "--workload", "subscribers")
	for _, want := range []string{"writes-no-subscribers", "writes-4-subscribers-poll", "c=3", "delivered", "ratio subscribers/none"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "commit→handler") || strings.Contains(out, "replay") {
		t.Fatalf("subscribers workload ran more:\n%s", out)
	}
}

func TestBenchAllIncludesDelivery(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "100ms", "--rate", "100", "--workload", "all", "--replay", "100", "--json")
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if rep.Dispatch == nil || len(rep.Replay) != 4 || len(rep.Delivery) != 1 || rep.Subscribers == nil || len(rep.Subscribers.Results) != 2 {
		t.Fatalf("--workload all: %+v", rep)
	}
	// Without --concurrency the subscribers workload runs 16 clients.
	if c := rep.Subscribers.Results[0].Concurrency; c != 16 {
		t.Fatalf("subscribers concurrency %d, want 16", c)
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--concurrency", "0"},
		{"bench", "--workload", "fast"},
		{"bench", "--duration", "soon"},
		{"bench", "extra"},
		{"bench", "--rate", "0"},
		{"bench", "--poll", "0s"},
		{"bench", "--workload", "delivery,replay"},
	} {
		r := run(t, Options{}, "sqlite:///nonexistent/x.db", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "bench") {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}
