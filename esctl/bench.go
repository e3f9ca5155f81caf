package esctl

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/eventfold/eventfold/bench"
	"github.com/eventfold/eventfold/sqldriver"
)

// benchReport is what `esctl bench --json` prints.
type benchReport struct {
	Machine  string               `json:"machine"`
	Date     string               `json:"date"`
	Dispatch *bench.Report        `json:"dispatch,omitempty"`
	Replay   []bench.ReplayResult `json:"replay,omitempty"`
	// Delivery is the commit→handler latency per wake-up mode.
	Delivery []bench.LatencyResult `json:"delivery,omitempty"`
	// Subscribers compares write throughput with and without live
	// subscribers.
	Subscribers *bench.SubscribersReport `json:"subscribers,omitempty"`
}

// benchWorkloads are the values of --workload, "all" aside.
var benchWorkloads = []string{"dispatch", "replay", "delivery", "subscribers"}

func runBench(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("bench", "[flags]",
		`Measures the "dispatch" workload: per command, append events and let a reducer
upsert one read-model row per event. It reports commands/s, events/s and
p50/p95/p99 latency. With --raw the same work runs as hand-written SQL on the
bare driver in the same run (the baseline: compare ratios, not absolute
numbers); --group-commit adds the orchestrator's two group-commit modes:
"dispatch-group-commit" (each command's reducers run before the next
handler) and "dispatch-group-batched" (GroupCommitConfig.Batched: the
batch's handlers, then one append for all their events, then a batch reducer
with one multi-row upsert). --replay N
times rebuilding the read model from an N-event log (and N/2, to show memory
stays flat). --otel measures each dispatch mode again with OpenTelemetry on
(every span sampled and exported to a discarding exporter, metrics into a
reader), right after the mode without, and prints observed/plain. "delivery" measures the latency from commit to a live
subscriber's handler (p50/p95/p99) at --rate commands/s, woken by NOTIFY
(PostgreSQL only) and by polling every --poll, and apart from it the latency
from when each command was due (due→commit, due→handler: the writers' own
lag, with how many commands started late because every client was busy).
Before measuring, the delivery workload runs --warmup (1s) unmeasured, so no
mode starts on cold connections; --delivery-modes sets the modes and their
order (e.g. poll,notify).
"subscribers" measures write
throughput at --concurrency clients (16 unless given) with no subscriber and
with 4 following the log live (woken by NOTIFY on PostgreSQL, polling every
--poll elsewhere), and prints the ratio. Each mode reports its peak RSS.
--workload takes one of dispatch, replay, delivery, subscribers, or all.
Write into a scratch database: bench adds tables and events. Exit 4 when a
mode had errors (the report is printed in full; its figures count only the
commands that succeeded).`,
		`  esctl bench --dsn postgres://postgres@127.0.0.1/bench --concurrency 16 --raw --group-commit
  esctl bench --dsn sqlite:///tmp/bench.db --duration 10s --json
  esctl bench --dsn mysql://root@127.0.0.1:3306/bench --replay 100000 --workload replay
  esctl bench --dsn postgres://postgres@127.0.0.1/bench --workload delivery --rate 1000 --poll 10ms
  esctl bench --dsn postgres://postgres@127.0.0.1/bench --workload subscribers --concurrency 16`)
	concurrency := fs.Int("concurrency", 1, "concurrent clients")
	duration := fs.Duration("duration", 5*time.Second, "how long each mode runs")
	perCommand := fs.Int("events-per-command", 1, "events each command appends")
	group := fs.Bool("group-commit", false, "also measure group commit, both modes")
	committers := fs.Int("committers", 0, "group commit: transactions in flight at once (default: the orchestrator's, 4)")
	maxBatch := fs.Int("max-batch", 0, "group commit: commands per transaction at most (default: the orchestrator's, 32)")
	raw := fs.Bool("raw", false, "also measure the hand-written baseline and print ratios")
	noMarkers := fs.Bool("no-commit-markers", false, "dispatch without commit markers (to measure what they cost)")
	commandIDs := fs.Bool("command-ids", false, "give every command an id, so that dispatch looks it up and records it (idempotent dispatch)")
	deferred := fs.Bool("deferred-writes", false, "register the dispatch and delivery workloads' reducers with orchestrator.WithDeferredWrites (PostgreSQL; a no-op elsewhere)")
	onlyModes := fs.String("modes", "", "comma-separated dispatch modes to run (raw, raw-same-sql, dispatch, dispatch-group-commit, dispatch-group-batched); default all")
	cpuProfile := fs.String("cpuprofile", "", "write a Go CPU profile of the whole run to this file")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	workload := fs.String("workload", "dispatch", "dispatch, replay, delivery, subscribers or all")
	replayN := fs.Int64("replay", 100000, "log length for the replay workload")
	rate := fs.Int("rate", 1000, "commands/s of the delivery workload")
	warmup := fs.Duration("warmup", time.Second, "delivery and subscribers workloads: run the delivery workload this long, unmeasured, before measuring (0: none)")
	deliveryModes := fs.String("delivery-modes", "", "comma-separated wake-up modes of the delivery workload, measured in this order (notify, poll; may repeat); default notify,poll on PostgreSQL, poll elsewhere")
	poll := fs.Duration("poll", 10*time.Millisecond, "subscribers' poll interval (delivery and subscribers workloads)")
	notifyMin := fs.Duration("notify-min-interval", 0, "delivery and subscribers workloads on PostgreSQL: the Notifier's MinInterval (at most one notification per interval; 0: the library's default)")
	withOtel := fs.Bool("otel", false, "also measure dispatch with OpenTelemetry tracing and metrics on, and print the ratio")
	otelSample := fs.Float64("otel-sample", 1, "with --otel: the share of traces sampled (0..1)")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *concurrency < 1 || *concurrency > 1024:
		return usagef("bench: --concurrency must be 1..1024, not %d", *concurrency)
	case *duration <= 0:
		return usagef("bench: --duration must be positive")
	case *notifyMin < 0:
		return usagef("bench: --notify-min-interval must not be negative, not %s", *notifyMin)
	case *perCommand < 1 || *perCommand > 1000:
		return usagef("bench: --events-per-command must be 1..1000, not %d", *perCommand)
	case *committers < 0 || *maxBatch < 0:
		return usagef("bench: --committers and --max-batch must not be negative")
	case *replayN < 2:
		return usagef("bench: --replay must be at least 2")
	case *rate < 1 || *rate > 1000000:
		return usagef("bench: --rate must be 1..1000000, not %d", *rate)
	case *poll <= 0:
		return usagef("bench: --poll must be positive")
	case *warmup < 0:
		return usagef("bench: --warmup must not be negative")
	case *deliveryModes != "" && slices.ContainsFunc(strings.Split(*deliveryModes, ","), func(m string) bool { return m != "notify" && m != "poll" }):
		return usagef("bench: --delivery-modes takes notify and poll, comma-separated, not %q", *deliveryModes)
	case *workload != "all" && !slices.Contains(benchWorkloads, *workload):
		return usagef("bench: --workload must be %s or all, not %q", strings.Join(benchWorkloads, ", "), *workload)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	runs := func(w string) bool { return *workload == "all" || *workload == w }
	concurrencySet := false
	fs.Visit(func(f *flag.Flag) { concurrencySet = concurrencySet || f.Name == "concurrency" })
	// The benchmarks size their own pools (writers, readers, subscribers):
	// max_open_conns is not theirs, and pgx would send it to PostgreSQL as
	// a session parameter, which it refuses.
	target, err := sqldriver.DriverDSN(env.DSN)
	if err != nil {
		return err
	}
	rep := benchReport{Machine: machine(), Date: time.Now().UTC().Format(time.RFC3339)}
	text := env.Stdout
	if *asJSON {
		text = env.Stderr
	}
	if runs("dispatch") {
		fmt.Fprintf(text, "dispatch workload on %s, %d client(s), %s per mode, %d event(s) per command\n",
			env.scrub(target), *concurrency, *duration, *perCommand)
		bcfg := bench.Config{DSN: target, Concurrency: *concurrency, Duration: *duration,
			EventsPerCommand: *perCommand, GroupCommit: *group, Committers: *committers, MaxBatch: *maxBatch, Raw: *raw, NoCommitMarkers: *noMarkers, CommandIDs: *commandIDs, DeferredWrites: *deferred}
		if *onlyModes != "" {
			bcfg.Modes = strings.Split(*onlyModes, ",")
		}
		if *withOtel {
			if *otelSample < 0 || *otelSample > 1 {
				return usagef("bench: --otel-sample must be 0..1, not %g", *otelSample)
			}
			obs, stop, err := env.benchObserver(*otelSample)
			if err != nil {
				return err
			}
			defer stop()
			bcfg.Observer = obs
		}
		r, err := bench.Run(ctx, bcfg, text)
		if err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(r.Ratios)) { // a stable order to compare runs
			fmt.Fprintf(text, "ratio %-40s %.2f\n", k, r.Ratios[k])
		}
		rep.Dispatch = r
	}
	if runs("replay") {
		bar := env.progress("bench: replay", 0)
		rs, err := bench.Replay(ctx, target, []int64{*replayN / 2, *replayN}, nil)
		bar.finish()
		if err != nil {
			return err
		}
		for _, r := range rs {
			fmt.Fprintln(text, r)
		}
		rep.Replay = rs
	}
	if runs("delivery") || runs("subscribers") {
		subConcurrency := 16 // the subscribers workload's own default
		if concurrencySet {
			subConcurrency = *concurrency
		}
		if runs("delivery") {
			fmt.Fprintf(text, "delivery workload on %s, %s per mode, %d cmd/s, poll %s\n",
				env.scrub(target), *duration, *rate, *poll)
		}
		if runs("subscribers") {
			fmt.Fprintf(text, "subscribers workload on %s, %d client(s), %s per mode, 4 subscribers (NOTIFY on PostgreSQL, else poll %s)\n",
				env.scrub(target), subConcurrency, *duration, *poll)
		}
		dcfg := bench.DeliveryConfig{DSN: target, DeferredWrites: *deferred, Duration: *duration, Rate: *rate,
			PollInterval: *poll, Concurrency: subConcurrency,
			SkipLatency: !runs("delivery"), SkipSubscribers: !runs("subscribers")}
		dcfg.Warmup = *warmup
		dcfg.NotifyMinInterval = *notifyMin
		if *warmup == 0 {
			dcfg.Warmup = -1 // the bench package's "none"
		}
		if *deliveryModes != "" {
			dcfg.Modes = strings.Split(*deliveryModes, ",")
		}
		r, err := bench.Delivery(ctx, dcfg, text)
		if err != nil {
			return err
		}
		rep.Delivery, rep.Subscribers = r.Latency, r.Subscribers
	}
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	}
	return rep.failures()
}

// BenchErrorsError ends `esctl bench` when a mode counted errors: the
// report was printed in full, but its figures count only the commands that
// succeeded, so a script must not take them as the workload's. Main exits
// ExitBenchErrors.
type BenchErrorsError struct {
	// Modes are the modes with errors, each as "workload mode: N failed, M succeeded".
	Modes []string
}

func (e *BenchErrorsError) Error() string {
	return fmt.Sprintf("bench: %d mode(s) had errors (%s): their figures count only the commands that succeeded",
		len(e.Modes), strings.Join(e.Modes, "; "))
}

// failures returns a *BenchErrorsError naming every mode whose result
// counted errors, nil when none did.
func (r benchReport) failures() error {
	var modes []string
	add := func(workload, mode string, errs, ok int64) {
		if errs > 0 {
			modes = append(modes, fmt.Sprintf("%s %s: %d failed, %d succeeded", workload, mode, errs, ok))
		}
	}
	if r.Dispatch != nil {
		for _, res := range r.Dispatch.Results {
			add("dispatch", res.Mode, res.Errors, res.Commands)
		}
	}
	for _, res := range r.Delivery {
		add("delivery", res.Mode, res.Errors, res.Committed)
	}
	if r.Subscribers != nil {
		for _, res := range r.Subscribers.Results {
			add("subscribers", fmt.Sprintf("%s with %d subscribers", res.Mode, res.Subscribers), res.Errors, res.Commands)
		}
	}
	if len(modes) == 0 {
		return nil
	}
	return &BenchErrorsError{Modes: modes}
}

// machine describes where the figures were taken.
func machine() string {
	return fmt.Sprintf("%s %s/%s, %d CPUs", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
}
