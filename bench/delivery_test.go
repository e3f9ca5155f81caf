package bench

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestDeliveryReports runs Delivery briefly on every available dialect and
// checks the report's shape and that every committed event reached the
// subscribers; it asserts no speed (esctl bench is for that).
func TestDeliveryReports(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		var progress strings.Builder
		rep, err := Delivery(context.Background(), DeliveryConfig{
			DSN: testdb.EmptyDSN(t, d), Duration: 300 * time.Millisecond, Rate: 200,
			PollInterval: 5 * time.Millisecond, Concurrency: 2, Subscribers: 2, Warmup: 100 * time.Millisecond,
		}, &progress)
		require.NoError(t, err)
		wantModes := []string{"poll"}
		if d == eventfold.Postgres {
			wantModes = []string{"notify", "poll"}
		}
		require.Len(t, rep.Latency, len(wantModes), "latency results %+v, want modes %v", rep.Latency, wantModes)
		for i, r := range rep.Latency {
			require.False(t, r.Mode != wantModes[i] || r.Dialect != string(d) || r.TargetRate != 200, "latency result %d: %+v", i, r)
			require.False(t, r.Committed == 0 || r.Delivered != r.Committed || r.CommandsPerSecond <= 0 || r.Errors != 0, "%s: %+v", r.Mode, r)
			require.False(t, r.P50ms > r.P95ms || r.P95ms > r.P99ms || r.P99ms > r.MaxMS, "%s: percentiles out of order: %+v", r.Mode, r)
			// From the due time is from before the commit, event by event:
			// never less than from the commit.
			require.False(t, r.DueP50ms < r.P50ms || r.DueP99ms < r.P99ms || r.DueMaxMS < r.MaxMS || r.DueP50ms > r.DueP99ms || r.DueP99ms > r.DueMaxMS,
				"%s: latency from the due time below latency from the commit: %+v", r.Mode, r)
			require.False(t, r.DueCommitP50ms <= 0 || r.DueCommitP50ms > r.DueCommitP99ms, "%s: due→commit: %+v", r.Mode, r)
			require.LessOrEqual(t, r.Queued, r.Late, "%s: %+v", r.Mode, r)
			wantPoll := 5.0
			if r.Mode == "notify" {
				wantPoll = float64(notifyFallbackPoll.Milliseconds())
				require.NotZero(t, r.Notifications, "notify mode sent no notification: %+v", r)
			}
			require.Equal(t, wantPoll, r.PollIntervalMS, "%s: poll interval in ms", r.Mode)
		}
		s := rep.Subscribers
		require.False(t, s == nil || len(s.Results) != 2, "subscribers report %+v", s)
		none, with := s.Results[0], s.Results[1]
		require.False(t, none.Subscribers != 0 || with.Subscribers != 2 || none.Concurrency != 2 || with.Concurrency != 2, "subscribers results %+v", s.Results)
		for _, r := range s.Results {
			require.False(t, r.Commands == 0 || r.Errors != 0 || r.CommandsPerSecond <= 0 || r.P50ms > r.P99ms, "%s: %+v", r.Mode, r)
		}
		// Each of the subscribers saw every event committed while
		// they followed (one per command).
		require.Equal(t, with.Commands, with.Delivered, "each subscriber saw every event committed while it followed")
		require.Equal(t, with.CommandsPerSecond/none.CommandsPerSecond, s.Ratio)
		b, err := json.Marshal(rep)
		require.NoError(t, err)
		require.True(t, json.Valid(b))
		for _, key := range []string{"latency", "subscribers", "p50_ms", "p99_ms", "commands_per_second", "delivered", "committed", "peak_rss_bytes", "ratio", "due_p99_ms", "due_commit_p99_ms", "queued"} {
			require.Contains(t, string(b), `"`+key+`"`, "JSON report lacks %s", key)
		}
		require.Contains(t, progress.String(), "commit→handler")
		require.Contains(t, progress.String(), "due→handler")
		require.Contains(t, progress.String(), "subscribers/none")
		// The warm-up ran before the first measured mode, and said so.
		warm := strings.Index(progress.String(), "delivery warm-up: 100ms of "+wantModes[0]+" mode, not measured")
		require.GreaterOrEqual(t, warm, 0, "progress %q", progress.String())
		require.Less(t, warm, strings.Index(progress.String(), "commit→handler p50"), "warm-up after a measured mode: %q", progress.String())
	})
}

// TestDeliveryModesInOrder: Modes are measured in the order given, a mode
// may repeat, and a mode the dialect has not is refused before anything is
// written.
func TestDeliveryModesInOrder(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		modes := []string{"poll", "poll"}
		if d == eventfold.Postgres {
			modes = []string{"poll", "notify", "notify"}
		}
		var progress strings.Builder
		rep, err := Delivery(context.Background(), DeliveryConfig{DSN: testdb.EmptyDSN(t, d), Duration: 100 * time.Millisecond, Rate: 100,
			Warmup: -1, Modes: modes, SkipSubscribers: true}, &progress)
		require.NoError(t, err)
		require.Len(t, rep.Latency, len(modes))
		for i, r := range rep.Latency {
			require.Equal(t, modes[i], r.Mode, "result %d: %+v", i, r)
			require.False(t, r.Committed == 0 || r.Delivered != r.Committed, "%+v", r)
		}
		require.Contains(t, progress.String(), "delivery warm-up: none")

		bad := []string{"push"}
		if d != eventfold.Postgres {
			bad = []string{"poll", "notify"}
		}
		dsn := testdb.EmptyDSN(t, d)
		_, err = Delivery(context.Background(), DeliveryConfig{DSN: dsn, Duration: 100 * time.Millisecond, Modes: bad, SkipSubscribers: true}, nil)
		require.ErrorContains(t, err, "delivery mode")
		drv, err := sqldriver.Open(context.Background(), dsn)
		require.NoError(t, err)
		defer drv.Close()
		v, err := eventfold.SchemaVersion(context.Background(), d, drv.DB())
		require.NoError(t, err)
		require.Zero(t, v, "a refused mode wrote nothing (the schema is not installed)")
	})
}

// TestDeliveryOnlyOne checks that each part can be left out.
func TestDeliveryOnlyOne(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	rep, err := Delivery(context.Background(), DeliveryConfig{DSN: dsn, Duration: 100 * time.Millisecond, Rate: 100, SkipSubscribers: true}, nil)
	require.NoError(t, err)
	require.False(t, len(rep.Latency) != 1 || rep.Subscribers != nil || rep.Latency[0].PollIntervalMS != 10, "latency only: %+v", rep)
	rep, err = Delivery(context.Background(), DeliveryConfig{DSN: dsn, Duration: 100 * time.Millisecond, Concurrency: 2, SkipLatency: true}, nil)
	require.NoError(t, err)
	require.False(t, len(rep.Latency) != 0 || rep.Subscribers == nil || rep.Subscribers.Results[1].Subscribers != 4, "subscribers only: %+v", rep)
}

// TestRunPacedDropsNothing: when every client is busy, paced calls wait
// and run late instead of being dropped (they were dropped, and reported
// as "missed", before), so the offered rate holds.
func TestRunPacedDropsNothing(t *testing.T) {
	var calls atomic.Int64
	ps := runPaced(context.Background(), 1000, 200*time.Millisecond, 2, func(context.Context, int, int) error {
		calls.Add(1)
		time.Sleep(5 * time.Millisecond)
		return nil
	})
	require.NoError(t, ps.firstErr)
	require.Zero(t, ps.errs)
	require.Equal(t, int64(200), calls.Load(), "every paced call ran")
	require.Positive(t, ps.late, "two clients taking 5 ms each cannot keep up with 1,000 calls/s")
	// At most 2 of the first calls found a free client: every later one
	// was due while both were busy.
	require.GreaterOrEqual(t, ps.queued, ps.late-2, "late calls counted as queued behind busy clients")
	require.LessOrEqual(t, ps.queued, ps.late)
	require.Greater(t, ps.maxDelay, 10*time.Millisecond)
	require.Greater(t, ps.elapsed, 400*time.Millisecond, "the queued calls ran before runPaced returned")
	require.Equal(t, ps.start.Add(150*time.Millisecond), ps.due(150), "call 150 of a 1,000/s schedule is due 150 ms in")
}

// TestSeqOf reads the paced sequence number back from dispatchOp's stream
// ids, which the delivery latency from the due time depends on.
func TestSeqOf(t *testing.T) {
	require.Equal(t, 1234, seqOf("acct-dabc-n-7-1234"))
	require.Equal(t, 0, seqOf("acct-x-0-0"))
	require.Equal(t, -1, seqOf("acct-x-0-"))
	require.Equal(t, -1, seqOf("nodash"))
}
