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

// TestDeliveryReports runs Delivery briefly on every available dialect and
// checks the report's shape and that every committed event reached the
// subscribers; it asserts no speed (esctl bench is for that).
func TestDeliveryReports(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		var progress strings.Builder
		rep, err := Delivery(context.Background(), DeliveryConfig{
			DSN: testdb.EmptyDSN(t, d), Duration: 300 * time.Millisecond, Rate: 200,
			PollInterval: 5 * time.Millisecond, Concurrency: 2, Subscribers: 2,
		}, &progress)
		if err != nil {
			t.Fatal(err)
		}
		wantModes := []string{"poll"}
		if d == eventfold.Postgres {
			wantModes = []string{"notify", "poll"}
		}
		if len(rep.Latency) != len(wantModes) {
			t.Fatalf("latency results %+v, want modes %v", rep.Latency, wantModes)
		}
		for i, r := range rep.Latency {
			if r.Mode != wantModes[i] || r.Dialect != string(d) || r.TargetRate != 200 {
				t.Fatalf("latency result %d: %+v", i, r)
			}
			if r.Committed == 0 || r.Delivered != r.Committed || r.CommandsPerSecond <= 0 || r.Errors != 0 {
				t.Fatalf("%s: %+v", r.Mode, r)
			}
			if r.P50ms > r.P95ms || r.P95ms > r.P99ms || r.P99ms > r.MaxMS {
				t.Fatalf("%s: percentiles out of order: %+v", r.Mode, r)
			}
			wantPoll := 5.0
			if r.Mode == "notify" {
				wantPoll = float64(notifyFallbackPoll.Milliseconds())
				if r.Notifications == 0 {
					t.Fatalf("notify mode sent no notification: %+v", r)
				}
			}
			if r.PollIntervalMS != wantPoll {
				t.Fatalf("%s: poll interval %v ms, want %v", r.Mode, r.PollIntervalMS, wantPoll)
			}
		}
		s := rep.Subscribers
		if s == nil || len(s.Results) != 2 {
			t.Fatalf("subscribers report %+v", s)
		}
		none, with := s.Results[0], s.Results[1]
		if none.Subscribers != 0 || with.Subscribers != 2 || none.Concurrency != 2 || with.Concurrency != 2 {
			t.Fatalf("subscribers results %+v", s.Results)
		}
		for _, r := range s.Results {
			if r.Commands == 0 || r.Errors != 0 || r.CommandsPerSecond <= 0 || r.P50ms > r.P99ms {
				t.Fatalf("%s: %+v", r.Mode, r)
			}
		}
		// Each of the subscribers saw every event committed while
		// they followed (one per command).
		if with.Delivered != with.Commands {
			t.Fatalf("subscribers saw %d events, %d commands committed", with.Delivered, with.Commands)
		}
		if s.Ratio != with.CommandsPerSecond/none.CommandsPerSecond {
			t.Fatalf("ratio %v, want %v", s.Ratio, with.CommandsPerSecond/none.CommandsPerSecond)
		}
		b, err := json.Marshal(rep)
		if err != nil || !json.Valid(b) {
			t.Fatalf("JSON: %v", err)
		}
		for _, key := range []string{"latency", "subscribers", "p50_ms", "p99_ms", "commands_per_second", "delivered", "committed", "peak_rss_bytes", "ratio"} {
			if !strings.Contains(string(b), `"`+key+`"`) {
				t.Fatalf("JSON report lacks %s: %s", key, b)
			}
		}
		if out := progress.String(); !strings.Contains(out, "commit→handler") || !strings.Contains(out, "subscribers/none") {
			t.Fatalf("progress output %q", out)
		}
	})
}

// TestDeliveryOnlyOne checks that each part can be left out.
func TestDeliveryOnlyOne(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	rep, err := Delivery(context.Background(), DeliveryConfig{DSN: dsn, Duration: 100 * time.Millisecond, Rate: 100, SkipSubscribers: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Latency) != 1 || rep.Subscribers != nil || rep.Latency[0].PollIntervalMS != 10 {
		t.Fatalf("latency only: %+v", rep)
	}
	rep, err = Delivery(context.Background(), DeliveryConfig{DSN: dsn, Duration: 100 * time.Millisecond, Concurrency: 2, SkipLatency: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Latency) != 0 || rep.Subscribers == nil || rep.Subscribers.Results[1].Subscribers != 4 {
		t.Fatalf("subscribers only: %+v", rep)
	}
}
