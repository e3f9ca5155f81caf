package esctl

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	"github.com/eventfold/eventfold/bench"
)

// benchReport is what `esctl bench --json` prints.
type benchReport struct {
	Machine  string               `json:"machine"`
	Date     string               `json:"date"`
	Dispatch *bench.Report        `json:"dispatch,omitempty"`
	Replay   []bench.ReplayResult `json:"replay,omitempty"`
}

func runBench(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("bench", "[flags]",
		`Measures the "dispatch" workload: per command, append events and let a reducer
upsert one read-model row per event. It reports commands/s, events/s and
p50/p95/p99 latency. With --raw the same work runs as hand-written SQL on the
bare driver in the same run (the baseline: compare ratios, not absolute
numbers); --group-commit adds the orchestrator's group-commit mode. --replay N
times rebuilding the read model from an N-event log (and N/2, to show memory
stays flat). Write into a scratch database: bench adds tables and events.`,
		`  esctl bench --dsn postgres://postgres@127.0.0.1/bench --concurrency 16 --raw --group-commit
  esctl bench --dsn sqlite:///tmp/bench.db --duration 10s --json
  esctl bench --dsn mysql://root@127.0.0.1:3306/bench --replay 100000 --workload replay`)
	concurrency := fs.Int("concurrency", 1, "concurrent clients")
	duration := fs.Duration("duration", 5*time.Second, "how long each mode runs")
	perCommand := fs.Int("events-per-command", 1, "events each command appends")
	group := fs.Bool("group-commit", false, "also measure group commit")
	raw := fs.Bool("raw", false, "also measure the hand-written baseline and print ratios")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	workload := fs.String("workload", "dispatch", "dispatch, replay or all")
	replayN := fs.Int64("replay", 100000, "log length for the replay workload")
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
	case *perCommand < 1 || *perCommand > 1000:
		return usagef("bench: --events-per-command must be 1..1000, not %d", *perCommand)
	case *replayN < 2:
		return usagef("bench: --replay must be at least 2")
	case *workload != "dispatch" && *workload != "replay" && *workload != "all":
		return usagef("bench: --workload must be dispatch, replay or all, not %q", *workload)
	}
	target := env.DSN
	rep := benchReport{Machine: machine(), Date: time.Now().UTC().Format(time.RFC3339)}
	text := env.Stdout
	if *asJSON {
		text = env.Stderr
	}
	if *workload != "replay" {
		fmt.Fprintf(text, "dispatch workload on %s, %d client(s), %s per mode, %d event(s) per command\n",
			env.scrub(target), *concurrency, *duration, *perCommand)
		r, err := bench.Run(ctx, bench.Config{DSN: target, Concurrency: *concurrency, Duration: *duration,
			EventsPerCommand: *perCommand, GroupCommit: *group, Raw: *raw}, text)
		if err != nil {
			return err
		}
		for k, v := range r.Ratios {
			fmt.Fprintf(text, "ratio %-28s %.2f\n", k, v)
		}
		rep.Dispatch = r
	}
	if *workload != "dispatch" {
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
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return nil
}

// machine describes where the figures were taken.
func machine() string {
	return fmt.Sprintf("%s %s/%s, %d CPUs", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
}
