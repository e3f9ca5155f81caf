package esctl

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

func TestBenchJSON(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "2", "--raw", "--group-commit",
		"--workload", "all", "--replay", "400", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "bench --json printed %q", out)
	require.NotNil(t, rep.Dispatch)
	require.Len(t, rep.Dispatch.Results, 5)
	modes := map[string]bool{}
	for _, r := range rep.Dispatch.Results {
		modes[r.Mode] = true
		require.NotZero(t, r.Commands, "result %+v", r)
		require.Positive(t, r.CommandsPerSecond, "result %+v", r)
		require.GreaterOrEqual(t, r.P99ms, r.P50ms, "result %+v", r)
	}
	for _, m := range []string{"raw", "raw-same-sql", "dispatch", "dispatch-group-commit", "dispatch-group-batched"} {
		require.True(t, modes[m], "mode %s missing from %v", m, modes)
	}
	require.Contains(t, rep.Dispatch.Ratios, "dispatch/raw")
	// Per size, a per-event and a batch-reducer replay.
	require.Len(t, rep.Replay, 4)
	require.EqualValues(t, 200, rep.Replay[0].Events, "replay %+v", rep.Replay)
	require.EqualValues(t, 400, rep.Replay[2].Events, "replay %+v", rep.Replay)
	require.Equal(t, "per-event", rep.Replay[0].Reducer)
	require.Equal(t, "batch", rep.Replay[1].Reducer)
	require.Positive(t, rep.Replay[3].EventsPerSecond, "replay %+v", rep.Replay)
	for _, key := range []string{`"commands_per_second"`, `"events_per_second"`, `"p50_ms"`, `"p95_ms"`, `"p99_ms"`} {
		require.Contains(t, out, key)
	}
}

func TestBenchDeliveryJSON(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "2", "--rate", "100", "--poll", "5ms",
		"--workload", "delivery", "--warmup", "100ms", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "bench --json printed %q", out)
	require.Nil(t, rep.Dispatch)
	require.Nil(t, rep.Replay)
	require.Nil(t, rep.Subscribers)
	require.Len(t, rep.Delivery, 1)
	d := rep.Delivery[0]
	require.Equal(t, "poll", d.Mode, "delivery %+v", d)
	require.EqualValues(t, 5, d.PollIntervalMS, "delivery %+v", d)
	require.EqualValues(t, 100, d.TargetRate, "delivery %+v", d)
	require.NotZero(t, d.Committed, "delivery %+v", d)
	require.Equal(t, d.Committed, d.Delivered, "delivery %+v", d)
	require.GreaterOrEqual(t, d.P99ms, d.P50ms, "delivery %+v", d)
	for _, key := range []string{`"delivery"`, `"p50_ms"`, `"p99_ms"`, `"poll_interval_ms"`, `"peak_rss_bytes"`} {
		require.Contains(t, out, key)
	}
}

// TestBenchNotifyMinInterval: --notify-min-interval reaches the delivery
// workload's Notifier: at 200 commands/s for 400 ms, at most one pg_notify
// per 100 ms (5 with the first), where each commit gets its own or shares
// one in flight without it.
func TestBenchNotifyMinInterval(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.Postgres)
	out := mustRun(t, dsn, "bench", "--duration", "400ms", "--rate", "200", "--workload", "delivery",
		"--delivery-modes", "notify", "--warmup", "0", "--notify-min-interval", "100ms", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "bench --json printed %q", out)
	require.Len(t, rep.Delivery, 1)
	d := rep.Delivery[0]
	require.Equal(t, "notify", d.Mode, "delivery %+v", d)
	require.Greater(t, d.Committed, int64(20), "delivery %+v", d)
	require.Equal(t, d.Committed, d.Delivered, "delivery %+v", d)
	require.Positive(t, d.Notifications, "delivery %+v", d)
	require.LessOrEqual(t, d.Notifications, uint64(6), "delivery %+v", d)
}

func TestBenchSubscribersText(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "3", "--workload", "subscribers")
	for _, want := range []string{"writes-no-subscribers", "writes-4-subscribers-poll", "c=3", "delivered", "ratio subscribers/none"} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "commit→handler", "subscribers workload ran more")
	require.NotContains(t, out, "replay", "subscribers workload ran more")
}

func TestBenchAllIncludesDelivery(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	out := mustRun(t, dsn, "bench", "--duration", "100ms", "--rate", "100", "--workload", "all", "--replay", "100", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "bench --json printed %q", out)
	require.NotNil(t, rep.Dispatch)
	require.Len(t, rep.Replay, 4)
	require.Len(t, rep.Delivery, 1)
	require.NotNil(t, rep.Subscribers)
	require.Len(t, rep.Subscribers.Results, 2)
	// Without --concurrency the subscribers workload runs 16 clients.
	require.Equal(t, 16, rep.Subscribers.Results[0].Concurrency)
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
		{"bench", "--warmup", "-1s"},
		{"bench", "--notify-min-interval", "-5ms"},
		{"bench", "--workload", "delivery", "--delivery-modes", "notify,push"},
	} {
		r := run(t, Options{}, "sqlite:///nonexistent/x.db", args...)
		require.Equal(t, ExitUsage, r.code, "%v: stderr %q", args, r.stderr)
		require.Contains(t, r.stderr, "bench", "%v", args)
	}
}

// TestBenchExitsNonZeroOnErrors: a bench whose mode counted errors exited
// 0, so an operator's script took half-failed figures for the workload's.
// It exits ExitBenchErrors (4) after printing the whole report, naming
// the mode and its counts on stderr. The errors are real: the read-model
// table is created beforehand with a CHECK that every fifth deposit (an
// amount divisible by 5) violates; bench keeps an existing table.
func TestBenchExitsNonZeroOnErrors(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.SQLite)
	mustRun(t, dsn, "migrate", "up")
	store := openStore(t, dsn)
	require.NoError(t, store.Ops().Exec(context.Background(),
		`CREATE TABLE bench_accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance % 5 <> 0), version INTEGER NOT NULL)`))
	for _, asJSON := range []bool{false, true} {
		args := []string{"bench", "--duration", "300ms", "--modes", "dispatch"}
		if asJSON {
			args = append(args, "--json")
		}
		r := run(t, Options{}, dsn, args...)
		require.Equal(t, ExitBenchErrors, r.code, "json %v: stdout %s\nstderr %s", asJSON, r.stdout, r.stderr)
		require.Regexp(t, `mode\(s\) had errors \(dispatch dispatch: [1-9][0-9]* failed, [1-9][0-9]* succeeded\)`, r.stderr)
		if asJSON {
			var rep benchReport
			require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), "bench --json printed %q", r.stdout)
			require.Len(t, rep.Dispatch.Results, 1)
			require.Positive(t, rep.Dispatch.Results[0].Errors)
		} else {
			require.Contains(t, r.stdout, "dispatch: ", "the report is printed")
		}
	}
	// Without errors: exit 0.
	require.NoError(t, store.Ops().Exec(context.Background(), `DROP TABLE bench_accounts`))
	mustRun(t, dsn, "bench", "--duration", "200ms", "--modes", "dispatch")
}

// TestBenchIgnoresMaxOpenConns: bench on PostgreSQL with max_open_conns in
// the DSN failed every command ("unrecognized configuration parameter
// \"max_open_conns\""): its pgx pools passed the parameter to the server.
// The benchmarks size their own pools and drop it.
func TestBenchIgnoresMaxOpenConns(t *testing.T) {
	dsn := withMaxOpen(testdb.EmptyDSN(t, eventfold.Postgres), 2)
	out := mustRun(t, dsn, "bench", "--duration", "200ms", "--concurrency", "1", "--workload", "dispatch", "--json")
	var rep benchReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep), "bench --json printed %q", out)
	require.NotNil(t, rep.Dispatch)
	for _, r := range rep.Dispatch.Results {
		require.NotZero(t, r.Commands, "result %+v", r)
	}
}
