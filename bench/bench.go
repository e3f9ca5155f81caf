package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// Config configures a benchmark run.
type Config struct {
	// DSN names the database (eventfold DSN). Required.
	DSN string
	// Concurrency is the number of concurrent clients. Defaults to 1.
	Concurrency int
	// Duration is how long each mode runs. Defaults to 5s.
	Duration time.Duration
	// EventsPerCommand is how many events each command appends (each
	// reduced into the read model). Defaults to 1.
	EventsPerCommand int
	// GroupCommit also measures the orchestrator's group-commit modes:
	// "dispatch-group-commit" (each command's reducers before the next
	// handler) and "dispatch-group-batched" (GroupCommitConfig.Batched,
	// with the read model as a batch reducer: one multi-row upsert per
	// batch).
	GroupCommit bool
	// Committers and MaxBatch tune group commit (see
	// orchestrator.GroupCommitConfig). Default to the orchestrator's.
	Committers, MaxBatch int
	// Raw also measures the hand-written baseline and reports ratios.
	Raw bool
	// NoCommitMarkers turns the orchestrator's commit markers off (see
	// orchestrator.Config.NoCommitMarkers), to measure what they cost.
	NoCommitMarkers bool
	// CommandIDs gives every dispatched command an id (Envelope.ID), so
	// that each dispatch also looks up and records it: the cost of
	// idempotent dispatch (esctl bench --command-ids).
	CommandIDs bool
	// DeferredWrites registers the dispatch reducers with
	// orchestrator.WithDeferredWrites (esctl bench --deferred-writes).
	DeferredWrites bool
	// Observer, when set, also measures each dispatch mode with it as the
	// orchestrator's Observer (mode name + "-observed"), right after the
	// same mode without, and reports the ratio: what tracing and metrics
	// cost (esctl bench --otel).
	Observer orchestrator.Observer
	// Modes, when not empty, runs only the modes named (e.g. "raw",
	// "dispatch-group-batched"); ratios need their baseline among them.
	Modes []string
}

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.EventsPerCommand <= 0 {
		c.EventsPerCommand = 1
	}
	return c
}

// Report is what Run measured.
type Report struct {
	Results []Result `json:"results"`
	// Ratios compares each eventfold mode with the baselines of the same
	// run (commands per second), e.g. "dispatch/raw": 0.91. Two baselines:
	// "raw" is the minimal hand-written workload (INSERT an event row,
	// upsert the read model: the pgbench script's SQL, no version check);
	// "raw-same-sql" runs, hand-written on the bare driver, exactly the SQL
	// eventfold runs (the append function or procedure, the upsert), so
	// dispatch/raw-same-sql is the cost of the Go framework alone.
	Ratios map[string]float64 `json:"ratios,omitempty"`
}

// Run measures the dispatch workload in each requested mode, printing a
// line per mode to progress (may be nil).
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Report, error) {
	cfg = cfg.withDefaults()
	if progress == nil {
		progress = io.Discard
	}
	fx, err := prepare(ctx, cfg.DSN, cfg.Concurrency+4)
	if err != nil {
		return nil, err
	}
	defer fx.drv.Close()
	d, sqls, sqlStore := fx.dialect, fx.sqls, fx.store
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	rep := &Report{Ratios: map[string]float64{}}
	var batches atomic.Int64 // the sum of the BatchSize of each command answered
	measure := func(mode string, fn op) error {
		if len(cfg.Modes) > 0 && !slices.Contains(cfg.Modes, mode) {
			return nil
		}
		resetPeakRSS()
		server := serverCPU(ctx, d, fx.drv.DB())
		batches.Store(0)
		cpu := processCPU()
		lat, errs, elapsed, firstErr := runLoad(ctx, cfg.Concurrency, cfg.Duration, fn)
		cpu = processCPU() - cpu
		serverTime := serverCPUSince(server, serverCPU(ctx, d, fx.drv.DB()))
		r := summarize(mode, lat, errs, elapsed, cfg.EventsPerCommand)
		r.Dialect, r.Concurrency, r.PeakRSSBytes = string(d), cfg.Concurrency, peakRSS()
		if r.Commands > 0 {
			r.CPUMicrosPerCommand = float64(cpu.Microseconds()) / float64(r.Commands)
			r.ServerCPUMicrosPerCommand = float64(serverTime.Microseconds()) / float64(r.Commands)
			if n := batches.Load(); n > 0 {
				r.MeanBatchSize = float64(n) / float64(r.Commands)
			}
		}
		if r.Commands == 0 && firstErr != nil {
			return fmt.Errorf("bench: %s: every command failed: %w", mode, firstErr)
		}
		if firstErr != nil {
			fmt.Fprintf(progress, "%s: %d errors, first: %v\n", mode, errs, firstErr)
		}
		fmt.Fprintln(progress, r)
		rep.Results = append(rep.Results, r)
		return nil
	}

	if cfg.Raw {
		for _, mode := range []string{"raw", "raw-same-sql"} {
			runner := rawRunner
			if mode == "raw-same-sql" {
				runner = sameSQLRunner
			}
			rawOp, closeRaw, err := runner(ctx, d, cfg, sqls)
			if err != nil {
				return nil, err
			}
			err = measure(mode, rawOp)
			closeRaw()
			if err != nil {
				return nil, err
			}
		}
	}

	// batched is group commit's batched mode (GroupCommitConfig.Batched),
	// with the read model as a batch reducer.
	type dispatchMode struct{ group, batched, observed bool }
	var modes []dispatchMode
	for _, dm := range []dispatchMode{{}, {group: true}, {group: true, batched: true}} {
		if dm.group && !cfg.GroupCommit {
			continue
		}
		modes = append(modes, dm)
		if cfg.Observer != nil {
			dm.observed = true
			modes = append(modes, dm)
		}
	}
	// build returns the dispatch op of one mode and what closes it.
	build := func(dm dispatchMode, mode string) (op, func(), error) {
		group := dm.group
		ocfg := &orchestrator.Config{NoCommitMarkers: cfg.NoCommitMarkers}
		if dm.observed {
			ocfg.Observer = cfg.Observer
		}
		if group {
			ocfg.GroupCommit = &orchestrator.GroupCommitConfig{Committers: cfg.Committers, MaxBatch: cfg.MaxBatch, Batched: dm.batched}
		}
		prefix := run + mode[:1] + strconv.FormatBool(group)[:1] + strconv.FormatBool(dm.observed)[:1] + mode[len(mode)-1:]
		if d == eventfold.Postgres {
			pool, err := pgxpool.New(ctx, withPoolSize(cfg.DSN, cfg.Concurrency+4))
			if err != nil {
				return nil, nil, fmt.Errorf("bench: connect: %w", err)
			}
			store := eventfold.New[pgx.Tx](pgxdriver.New(pool), nil)
			o := newOrchestrator(store, func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
				_, err := tx.Exec(ctx, q, args...)
				return err
			}, sqls, ocfg, reducerOpts(cfg.DeferredWrites)...)
			return dispatchOp(o, prefix, cfg.EventsPerCommand, cfg.CommandIDs, &batches), pool.Close, nil
		}
		o := newOrchestrator(sqlStore, func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		}, sqls, ocfg)
		return dispatchOp(o, prefix, cfg.EventsPerCommand, cfg.CommandIDs, &batches), func() {}, nil
	}
	for _, dm := range modes {
		mode := "dispatch"
		switch {
		case dm.batched:
			mode = "dispatch-group-batched"
		case dm.group:
			mode = "dispatch-group-commit"
		}
		if dm.observed {
			mode += "-observed"
		}
		fn, closeFn, err := build(dm, mode)
		if err != nil {
			return nil, err
		}
		err = measure(mode, fn)
		closeFn()
		if err != nil {
			return nil, err
		}
	}
	if cfg.Observer != nil {
		// The machine's noise moves more between two modes run one after
		// the other than instrumentation costs; run both at once, each
		// client alternating plain and observed commands, and compare mean
		// latencies: at a fixed number of clients, throughput is their
		// inverse.
		plain, closePlain, err := build(dispatchMode{}, "interleaved-p")
		if err != nil {
			return nil, err
		}
		observed, closeObserved, err := build(dispatchMode{observed: true}, "interleaved-o")
		if err != nil {
			closePlain()
			return nil, err
		}
		meanPlain, meanObserved, err := interleave(ctx, cfg.Concurrency, cfg.Duration, plain, observed)
		closePlain()
		closeObserved()
		if err != nil {
			return nil, err
		}
		if meanObserved > 0 {
			rep.Ratios["dispatch-observed/dispatch (interleaved)"] = float64(meanPlain) / float64(meanObserved)
		}
		fmt.Fprintf(progress, "interleaved: mean latency plain %s, observed %s\n", meanPlain, meanObserved)
	}
	for _, r := range rep.Results {
		if plain, ok := strings.CutSuffix(r.Mode, "-observed"); ok {
			if b := rep.find(plain); b != nil && b.CommandsPerSecond > 0 {
				rep.Ratios[r.Mode+"/"+plain] = r.CommandsPerSecond / b.CommandsPerSecond
			}
		}
	}
	for _, base := range []string{"raw", "raw-same-sql"} {
		b := rep.find(base)
		if b == nil || b.CommandsPerSecond <= 0 {
			continue
		}
		for _, r := range rep.Results {
			if !strings.HasPrefix(r.Mode, "raw") {
				rep.Ratios[r.Mode+"/"+base] = r.CommandsPerSecond / b.CommandsPerSecond
			}
		}
	}
	return rep, nil
}

func (r *Report) find(mode string) *Result {
	for i := range r.Results {
		if r.Results[i].Mode == mode {
			return &r.Results[i]
		}
	}
	return nil
}

// withPoolSize sets pgxpool's pool_max_conns on a PostgreSQL URL, in place
// of sqldriver's max_open_conns (pgx would send that to the server, which
// refuses the connection: unrecognized configuration parameter).
func withPoolSize(dsn string, n int) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Del("max_open_conns")
	q.Set("pool_max_conns", strconv.Itoa(n))
	u.RawQuery = q.Encode()
	return u.String()
}

// rawRunner returns the hand-written baseline: the same statements as the
// pgbench script, on the bare driver, no framework.
func rawRunner(ctx context.Context, d eventfold.Dialect, cfg Config, sqls dialectSQL) (op, func(), error) {
	payload := func(seq int) string {
		b, _ := json.Marshal(deposited{Amount: 1 + seq%1000})
		return string(b)
	}
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + "r"
	if d == eventfold.Postgres {
		pool, err := pgxpool.New(ctx, withPoolSize(cfg.DSN, cfg.Concurrency+4))
		if err != nil {
			return nil, nil, fmt.Errorf("bench: raw: connect: %w", err)
		}
		return func(ctx context.Context, w, seq int) error {
			account := fmt.Sprintf("acct-%s-%d-%d", run, w, seq)
			tx, err := pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after Commit
			for i := range cfg.EventsPerCommand {
				if _, err := tx.Exec(ctx, sqls.rawInsert, account, i+1, payload(seq)); err != nil {
					return err
				}
				if _, err := tx.Exec(ctx, sqls.upsert, account, 1+seq%1000); err != nil {
					return err
				}
			}
			return tx.Commit(ctx)
		}, pool.Close, nil
	}
	drv, err := openSized(ctx, cfg.DSN, cfg.Concurrency+4)
	if err != nil {
		return nil, nil, err
	}
	db := drv.DB()
	return func(ctx context.Context, w, seq int) error {
		account := fmt.Sprintf("acct-%s-%d-%d", run, w, seq)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }() // a no-op after Commit
		for i := range cfg.EventsPerCommand {
			if _, err := tx.ExecContext(ctx, sqls.rawInsert, account, i+1, payload(seq)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, sqls.upsert, account, 1+seq%1000); err != nil {
				return err
			}
		}
		return tx.Commit()
	}, func() { drv.Close() }, nil
}
