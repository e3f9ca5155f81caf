package bench

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
)

// DeliveryConfig configures Delivery. Only DSN is required.
type DeliveryConfig struct {
	// DSN names the database (eventfold DSN). Required.
	DSN string
	// Duration is how long each mode runs. Defaults to 5s.
	Duration time.Duration
	// Rate is the target of the latency test, in commands per second.
	// Defaults to 1,000.
	Rate int
	// PollInterval is the subscribers' poll interval when they poll.
	// Defaults to 10ms.
	PollInterval time.Duration
	// Concurrency is the number of concurrent clients of the throughput
	// test. Defaults to 16.
	Concurrency int
	// Subscribers is how many live subscribers the throughput test
	// attaches. Defaults to 4.
	Subscribers int
	// NotifyMinInterval is the Notifier's MinInterval in notify mode
	// (listener.NotifierOptions): 0, the default, sends the next
	// notification as soon as the previous one is done.
	NotifyMinInterval time.Duration
	// SkipLatency and SkipSubscribers leave out the latency test or the
	// throughput test.
	SkipLatency, SkipSubscribers bool
	// DeferredWrites registers the writers' reducer with
	// orchestrator.WithDeferredWrites.
	DeferredWrites bool
	// Warmup is how long the delivery workload runs, unmeasured, before
	// the first measured mode (in that mode's wake-up), so that no mode
	// measures cold connections: each new PostgreSQL backend spends ~20 ms
	// of server CPU on its first commands (catalog caches, the first plans
	// of the append statement), which at 1,000 commands/s put the first
	// measured mode ~0.25–0.5 s behind its schedule. Defaults to 1s;
	// negative: none.
	Warmup time.Duration
	// Modes are the latency test's wake-up modes, measured in this order
	// ("notify" on PostgreSQL only, "poll"); a mode may repeat. Defaults to
	// notify then poll on PostgreSQL, poll elsewhere.
	Modes []string
}

func (c DeliveryConfig) withDefaults() DeliveryConfig {
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Rate <= 0 {
		c.Rate = 1000
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 10 * time.Millisecond
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Subscribers <= 0 {
		c.Subscribers = 4
	}
	if c.Warmup == 0 {
		c.Warmup = time.Second
	}
	return c
}

// notifyFallbackPoll is how often a subscriber woken by NOTIFY polls
// anyway (the listener's default): long enough that the measured latency is
// NOTIFY's, not the poll's.
const notifyFallbackPoll = 500 * time.Millisecond

// latencyWorkers is how many clients the latency test spreads its
// dispatches over; the rate, not this, sets the load.
const latencyWorkers = 16

// DeliveryReport is what Delivery measured.
type DeliveryReport struct {
	// Latency has one result per wake-up mode: "notify" (PostgreSQL only)
	// and "poll".
	Latency []LatencyResult `json:"latency,omitempty"`
	// Subscribers compares write throughput without and with live
	// subscribers.
	Subscribers *SubscribersReport `json:"subscribers,omitempty"`
}

// LatencyResult is one commit→handler latency measurement: dispatches
// paced at TargetRate while one live subscriber follows the log.
type LatencyResult struct {
	// Mode is "notify" (woken by PostgreSQL NOTIFY through a pgxdriver.Listener)
	// or "poll" (polling only).
	Mode    string `json:"mode"`
	Dialect string `json:"dialect"`
	// PollIntervalMS is the subscriber's poll interval (in notify mode the
	// fallback it polls at anyway).
	PollIntervalMS float64 `json:"poll_interval_ms"`
	// TargetRate is the commands per second asked for; CommandsPerSecond
	// is what committed. Late counts the paced commands that started more
	// than 1 ms after they were due (none is dropped: they queue, so the
	// offered rate holds), and MaxStartDelayMS is the longest such wait.
	// Of them, Queued were due while every client was still busy (the
	// writers fell behind the rate); the others had a free client whose
	// goroutine started late (Go or OS scheduling). (Before 2026-12-01
	// such commands were dropped and reported as "missed".)
	TargetRate        float64 `json:"target_rate"`
	CommandsPerSecond float64 `json:"commands_per_second"`
	Late              int64   `json:"late"`
	Queued            int64   `json:"queued"`
	MaxStartDelayMS   float64 `json:"max_start_delay_ms"`
	Errors            int64   `json:"errors"`
	Seconds           float64 `json:"seconds"`
	// Committed and Delivered count the events committed and seen by the
	// subscriber; Delivery fails unless they are equal.
	Committed int64 `json:"committed"`
	Delivered int64 `json:"delivered"`
	// Latency from the commit (the orchestrator's after-commit hook) to
	// the subscriber's handler seeing the event: the library's delivery
	// latency.
	P50ms float64 `json:"p50_ms"`
	P95ms float64 `json:"p95_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMS float64 `json:"max_ms"`
	// Due* are the latency from when the command was due on the paced
	// schedule to the handler: the above plus the writer's own time (its
	// wait for a free client and its dispatch), what a caller of the
	// whole system would see. DueCommit* are from due to the commit (the
	// writer's part alone). Shown, not hidden, and kept apart from the
	// delivery latency: a writer behind the rate is not the listener's
	// delay.
	DueP50ms       float64 `json:"due_p50_ms"`
	DueP99ms       float64 `json:"due_p99_ms"`
	DueMaxMS       float64 `json:"due_max_ms"`
	DueCommitP50ms float64 `json:"due_commit_p50_ms"`
	DueCommitP99ms float64 `json:"due_commit_p99_ms"`
	// Notifications is how many pg_notify the Notifier sent (notify mode):
	// fewer than commits, as it coalesces.
	Notifications uint64 `json:"notifications,omitempty"`
	PeakRSSBytes  int64  `json:"peak_rss_bytes"`
}

// String renders the result as one text line.
func (r LatencyResult) String() string {
	s := fmt.Sprintf("delivery %-6s (poll %gms) %-9s %5.0f/%-5.0f cmd/s  commit→handler p50 %6.2f ms  p95 %6.2f ms  p99 %6.2f ms  max %6.2f ms  delivered %d/%d",
		r.Mode, r.PollIntervalMS, r.Dialect, r.CommandsPerSecond, r.TargetRate, r.P50ms, r.P95ms, r.P99ms, r.MaxMS, r.Delivered, r.Committed)
	if r.Mode == "notify" {
		s += fmt.Sprintf("  notifies %d", r.Notifications)
	}
	s += fmt.Sprintf("  due→commit p50 %.2f ms p99 %.2f ms  due→handler p50 %.2f ms p99 %.2f ms max %.2f ms",
		r.DueCommitP50ms, r.DueCommitP99ms, r.DueP50ms, r.DueP99ms, r.DueMaxMS)
	if r.Late > 0 || r.Errors > 0 {
		s += fmt.Sprintf("  late %d (every client busy: %d; start delay max %.1f ms)  errors %d", r.Late, r.Queued, r.MaxStartDelayMS, r.Errors)
	}
	return s + fmt.Sprintf("  peak RSS %d MiB", r.PeakRSSBytes>>20)
}

// SubscribersReport compares the dispatch workload's write throughput with
// no subscriber and with some following the log live.
type SubscribersReport struct {
	Results []ThroughputResult `json:"results"`
	// Ratio is commands/s with subscribers over commands/s without.
	Ratio float64 `json:"ratio"`
}

// String renders the report as text, one line per result and the ratio.
func (r SubscribersReport) String() string {
	var b strings.Builder
	for _, res := range r.Results {
		b.WriteString(res.String())
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "ratio %-28s %.2f", "subscribers/none", r.Ratio)
	return b.String()
}

// ThroughputResult is one write-throughput measurement (the dispatch
// workload's Result: latencies are the dispatches') with Subscribers live
// subscribers attached.
type ThroughputResult struct {
	Result
	Subscribers int `json:"subscribers"`
	// Wakeup is how the subscribers were woken: "notify" or "poll" ("" with
	// none).
	Wakeup         string  `json:"wakeup,omitempty"`
	PollIntervalMS float64 `json:"poll_interval_ms,omitempty"`
	// Delivered is the fewest events any subscriber saw; Delivery fails
	// unless it equals the events committed.
	Delivered int64 `json:"delivered"`
}

// String renders the result as one text line.
func (r ThroughputResult) String() string {
	s := r.Result.String()
	if r.Subscribers > 0 {
		s += fmt.Sprintf("  delivered %d to each", r.Delivered)
	}
	return s
}

// Delivery measures, on cfg.DSN's database, with the dispatch workload:
// the latency from commit to a live subscriber's handler at a paced rate,
// woken by NOTIFY (PostgreSQL) and by polling; and write throughput with no
// subscriber and with cfg.Subscribers following the log (woken by NOTIFY on
// PostgreSQL, polling elsewhere). Each mode reports its peak RSS. It fails
// if a subscriber did not see every committed event. Progress lines and the
// listener's warnings go to progress (may be nil).
func Delivery(ctx context.Context, cfg DeliveryConfig, progress io.Writer) (*DeliveryReport, error) {
	cfg = cfg.withDefaults()
	if progress == nil {
		progress = io.Discard
	}
	d, err := sqldriver.DialectOf(cfg.DSN)
	if err != nil {
		return nil, err
	}
	for _, mode := range cfg.Modes {
		if mode != "poll" && (mode != "notify" || d != eventfold.Postgres) {
			return nil, fmt.Errorf("bench: delivery mode %q: want poll, or notify on PostgreSQL", mode)
		}
	}
	writers := max(cfg.Concurrency, latencyWorkers) + 4
	fx, err := prepare(ctx, cfg.DSN, writers)
	if err != nil {
		return nil, err
	}
	defer fx.drv.Close()
	sqls, sqlStore := fx.sqls, fx.store
	h := harness{cfg: cfg, dialect: d, sqls: sqls, progress: progress,
		logger: slog.New(slog.NewTextHandler(progress, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	readers := cfg.Subscribers + 2
	if d == eventfold.Postgres {
		// Writers and subscribers get pools of their own, as if they ran in
		// different processes: subscribers never wait for a writer's
		// connection, nor writers for theirs.
		wpool, err := pgxpool.New(ctx, withPoolSize(cfg.DSN, writers+1))
		if err != nil {
			return nil, fmt.Errorf("bench: connect: %w", err)
		}
		defer wpool.Close()
		rpool, err := pgxpool.New(ctx, withPoolSize(cfg.DSN, readers))
		if err != nil {
			return nil, fmt.Errorf("bench: connect: %w", err)
		}
		defer rpool.Close()
		if err := warmPgx(ctx, wpool, writers+1); err != nil {
			return nil, err
		}
		if err := warmPgx(ctx, rpool, readers); err != nil {
			return nil, err
		}
		return measureDelivery(ctx, h, sides[pgx.Tx]{
			writer: eventfold.New[pgx.Tx](pgxdriver.New(wpool), nil),
			reader: eventfold.New[pgx.Tx](pgxdriver.New(rpool), nil),
			exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
				_, err := tx.Exec(ctx, q, args...)
				return err
			},
		})
	}
	rdrv, err := sqldriver.Open(ctx, cfg.DSN)
	if err != nil {
		return nil, err
	}
	defer rdrv.Close()
	rdrv.DB().SetMaxOpenConns(readers)
	rdrv.DB().SetMaxIdleConns(readers)
	if err := warmSQL(ctx, fx.drv.DB(), writers); err != nil {
		return nil, err
	}
	if err := warmSQL(ctx, rdrv.DB(), readers); err != nil {
		return nil, err
	}
	return measureDelivery(ctx, h, sides[*sql.Tx]{
		writer: sqlStore,
		reader: eventfold.New(rdrv, nil),
		exec: func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
			_, err := tx.ExecContext(ctx, q, args...)
			return err
		},
	})
}

// harness holds what every delivery mode shares.
type harness struct {
	cfg      DeliveryConfig
	dialect  eventfold.Dialect
	sqls     dialectSQL
	progress io.Writer
	logger   *slog.Logger
	// probe, when set, is told what the subscribers mode did (tests that
	// attribute its cost: TestSubscribersCPU).
	probe *subscribersProbe
}

// subscribersProbe collects what a subscribers mode did, for attribution:
// the LISTEN connection and the Notifier of its wake-ups (notify mode) and
// the batches its followers were handed.
type subscribersProbe struct {
	// mode, when set, is how the subscribers are woken ("notify" or
	// "poll") instead of the dialect's default.
	mode     string
	listen   *pgxdriver.Listener
	notifier *listener.Notifier
	batches  atomic.Int64
}

// sides are the writers' store and the subscribers' store (separate pools
// of the same database).
type sides[TTx any] struct {
	writer, reader *eventfold.Store[TTx]
	exec           txExec[TTx]
	// log, when set, is what followers read through instead of reader
	// (a counting wrapper of it); notify, when set, is the store the
	// Notifier sends pg_notify through instead of writer (a pool of its
	// own, so that its server time can be told apart).
	log    eventfold.Log
	notify *eventfold.Store[TTx]
}

func measureDelivery[TTx any](ctx context.Context, h harness, s sides[TTx]) (*DeliveryReport, error) {
	rep := &DeliveryReport{}
	if !h.cfg.SkipLatency {
		modes := h.cfg.Modes
		if len(modes) == 0 {
			modes = []string{"poll"}
			if h.dialect == eventfold.Postgres {
				modes = []string{"notify", "poll"}
			}
		}
		if err := warmUp(ctx, h, s, modes[0]); err != nil {
			return nil, err
		}
		for _, mode := range modes {
			r, err := measureLatency(ctx, h, s, mode)
			if err != nil {
				return nil, err
			}
			fmt.Fprintln(h.progress, r)
			rep.Latency = append(rep.Latency, *r)
		}
	}
	if !h.cfg.SkipSubscribers {
		if h.cfg.SkipLatency {
			mode := "poll"
			if h.dialect == eventfold.Postgres {
				mode = "notify"
			}
			if err := warmUp(ctx, h, s, mode); err != nil {
				return nil, err
			}
		}
		sr := &SubscribersReport{}
		for _, n := range []int{0, h.cfg.Subscribers} {
			r, err := measureThroughput(ctx, h, s, n)
			if err != nil {
				return nil, err
			}
			fmt.Fprintln(h.progress, r)
			sr.Results = append(sr.Results, *r)
		}
		if base := sr.Results[0].CommandsPerSecond; base > 0 {
			sr.Ratio = sr.Results[1].CommandsPerSecond / base
		}
		fmt.Fprintf(h.progress, "ratio %-28s %.2f\n", "subscribers/none", sr.Ratio)
		rep.Subscribers = sr
	}
	return rep, nil
}

// warmUp runs the latency test in mode for h.cfg.Warmup, unmeasured (it
// says so on progress), so that the measured modes start on warm
// connections (writers', readers') and a warm Store.
func warmUp[TTx any](ctx context.Context, h harness, s sides[TTx], mode string) error {
	if h.cfg.Warmup < 0 {
		fmt.Fprintln(h.progress, "delivery warm-up: none (the first mode runs on cold connections)")
		return nil
	}
	w := h
	w.cfg.Duration = h.cfg.Warmup
	r, err := measureLatency(ctx, w, s, mode)
	if err != nil {
		return fmt.Errorf("bench: warm-up: %w", err)
	}
	fmt.Fprintf(h.progress, "delivery warm-up: %s of %s mode, not measured (%d commands; its delivery p99 %.2f ms, due to commit p99 %.2f ms)\n",
		h.cfg.Warmup, mode, r.Committed, r.P99ms, r.DueCommitP99ms)
	return nil
}

// runID makes this run's stream ids unique, so that subscribers count only
// this run's events in a database holding earlier runs'.
func runID(mode string) string {
	return "d" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36) + mode
}

// wakeup sets up how subscribers are woken in mode "notify" or "poll" and
// returns their options and the Notifier to hook into the writers'
// after-commit (nil when polling). Its goroutines end with ctx; wg waits
// for them.
func wakeup[TTx any](ctx context.Context, h harness, s sides[TTx], mode string, wg *sync.WaitGroup) (*listener.Options, *listener.Notifier, error) {
	if mode != "notify" {
		return &listener.Options{PollInterval: h.cfg.PollInterval, Logger: h.logger}, nil, nil
	}
	sig := listener.NewSignal()
	// No in-process Signal on the Notifier: the subscriber is woken the
	// way one in another process would be, through the database.
	ns := s.writer
	if s.notify != nil {
		ns = s.notify
	}
	n := listener.NewNotifier(ns, &listener.NotifierOptions{Logger: h.logger, MinInterval: h.cfg.NotifyMinInterval})
	conn, err := sqldriver.DriverDSN(h.cfg.DSN) // without max_open_conns, which PostgreSQL refuses
	if err != nil {
		return nil, nil, err
	}
	l := &pgxdriver.Listener{ConnString: conn, Signal: sig, Logger: h.logger}
	if h.probe != nil {
		h.probe.listen, h.probe.notifier = l, n
	}
	// The roles' goroutines carry pprof labels, so that a CPU profile
	// tells the wake-ups' and the followers' share from the writers'.
	wg.Go(func() { pprof.Do(ctx, pprof.Labels("role", "listen"), func(ctx context.Context) { _ = l.Run(ctx) }) })
	wg.Go(func() { pprof.Do(ctx, pprof.Labels("role", "notifier"), func(ctx context.Context) { _ = n.Run(ctx) }) })
	deadline := time.Now().Add(10 * time.Second)
	for !l.Connected() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, nil, fmt.Errorf("bench: the LISTEN connection did not come up within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &listener.Options{PollInterval: notifyFallbackPoll, Wakeup: sig, Logger: h.logger}, n, nil
}

// follow starts a Tail on s.reader from the current head, handing fn the
// events of streams with prefix (with the time the batch arrived). The
// returned stop ends it and returns its error.
func follow[TTx any](ctx context.Context, s sides[TTx], opts *listener.Options, prefix string, fn func(evs []eventfold.Event, at time.Time)) (stop func() error, err error) {
	// Read the head here rather than with StartAtHead, so that the tail
	// provably starts before the load does.
	var log eventfold.Log = s.reader
	if s.log != nil {
		log = s.log
	}
	head, err := log.Head(ctx)
	if err != nil {
		return nil, fmt.Errorf("bench: read the head: %w", err)
	}
	opts.Filter = listener.Filter{StreamPrefixes: []string{prefix}}
	tctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go pprof.Do(tctx, pprof.Labels("role", "subscriber"), func(tctx context.Context) {
		done <- listener.Tail(tctx, log, head, opts, func(_ context.Context, b listener.Batch) error {
			if len(b.Events) > 0 {
				fn(b.Events, time.Now())
			}
			return nil
		})
	})
	return func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("bench: subscriber: %w", err)
		}
		return nil
	}, nil
}

// writer returns the dispatch workload's op into streams named after run,
// calling hook after each commit. The op ignores the deadline of the load
// that calls it and runs to completion under ctx: a dispatch cut off
// mid-commit could commit without the hook knowing, and the committed and
// delivered counts must agree exactly.
func writer[TTx any](ctx context.Context, h harness, s sides[TTx], run string, hook func(context.Context, []eventfold.Event)) op {
	o := newOrchestrator(s.writer, s.exec, h.sqls, &orchestrator.Config{AfterCommit: hook}, reducerOpts(h.cfg.DeferredWrites)...)
	fn := dispatchOp(o, run, 1, false, nil)
	return func(_ context.Context, w, seq int) error { return fn(ctx, w, seq) }
}

func measureLatency[TTx any](ctx context.Context, h harness, s sides[TTx], mode string) (*LatencyResult, error) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	opts, n, err := wakeup(lctx, h, s, mode, &wg)
	if err != nil {
		return nil, err
	}
	run := runID(mode[:1])
	prefix := "acct-" + run + "-"
	var seenMu sync.Mutex
	seen := map[string]time.Time{}
	var delivered atomic.Int64
	stop, err := follow(lctx, s, opts, prefix, func(evs []eventfold.Event, at time.Time) {
		seenMu.Lock()
		for _, e := range evs {
			seen[e.ID] = at
		}
		seenMu.Unlock()
		delivered.Add(int64(len(evs)))
	})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = stop()
		}
	}()

	var committedAt sync.Map // event id → commitRec
	var committed atomic.Int64
	resetPeakRSS()
	fn := writer(ctx, h, s, run, func(ctx context.Context, evs []eventfold.Event) {
		now := time.Now()
		for _, e := range evs {
			committedAt.Store(e.ID, commitRec{at: now, seq: seqOf(e.StreamID)})
		}
		committed.Add(int64(len(evs)))
		if n != nil {
			n.AfterCommit(ctx, evs)
		}
	})
	ps := runPaced(ctx, h.cfg.Rate, h.cfg.Duration, latencyWorkers, fn)
	late, maxDelay, errs, elapsed, firstErr := ps.late, ps.maxDelay, ps.errs, ps.elapsed, ps.firstErr
	if committed.Load() == 0 && firstErr != nil {
		return nil, fmt.Errorf("bench: delivery %s: every command failed: %w", mode, firstErr)
	}
	if firstErr != nil {
		fmt.Fprintf(h.progress, "delivery %s: %d errors, first: %v\n", mode, errs, firstErr)
	}
	waitErr := waitDelivered(ctx, h, func() int64 { return delivered.Load() }, committed.Load())
	stopped = true
	if err := stop(); err != nil {
		return nil, err
	}
	r := &LatencyResult{Mode: mode, Dialect: string(h.dialect), PollIntervalMS: ms(opts.PollInterval),
		TargetRate: float64(h.cfg.Rate), Late: late, Queued: ps.queued, MaxStartDelayMS: ms(maxDelay), Errors: errs, Seconds: elapsed.Seconds(),
		Committed: committed.Load(), Delivered: delivered.Load(), PeakRSSBytes: peakRSS()}
	if elapsed > 0 {
		r.CommandsPerSecond = float64(r.Committed) / elapsed.Seconds()
	}
	if n != nil {
		r.Notifications = n.Sent()
	}
	var lat, dueLat, dueCommit []time.Duration
	badSeq := 0
	committedAt.Range(func(k, v any) bool {
		c := v.(commitRec)
		if at, ok := seen[k.(string)]; ok {
			// The subscriber may read an event in the instant between its
			// commit and the hook: that is no delay at all.
			lat = append(lat, max(0, at.Sub(c.at)))
			if c.seq < 0 {
				badSeq++
				return true
			}
			due := ps.due(c.seq)
			dueLat = append(dueLat, max(0, at.Sub(due)))
			dueCommit = append(dueCommit, c.at.Sub(due))
		}
		return true
	})
	if badSeq > 0 {
		return nil, fmt.Errorf("bench: delivery %s: %d events of streams not named by the paced loop", mode, badSeq)
	}
	if int64(len(lat)) != r.Committed || r.Delivered != r.Committed || int64(len(seen)) != r.Committed {
		return nil, fmt.Errorf("bench: delivery %s: the subscriber saw %d events (%d distinct, %d of them committed by this run), %d committed: %v",
			mode, r.Delivered, len(seen), len(lat), r.Committed, waitErr)
	}
	slices.Sort(lat)
	r.P50ms, r.P95ms, r.P99ms = percentileMS(lat, 0.50), percentileMS(lat, 0.95), percentileMS(lat, 0.99)
	if len(lat) > 0 {
		r.MaxMS = ms(lat[len(lat)-1])
	}
	slices.Sort(dueLat)
	slices.Sort(dueCommit)
	r.DueP50ms, r.DueP99ms = percentileMS(dueLat, 0.50), percentileMS(dueLat, 0.99)
	r.DueCommitP50ms, r.DueCommitP99ms = percentileMS(dueCommit, 0.50), percentileMS(dueCommit, 0.99)
	if len(dueLat) > 0 {
		r.DueMaxMS = ms(dueLat[len(dueLat)-1])
	}
	return r, nil
}

// commitRec is when an event's command committed (the after-commit hook)
// and its place on the paced schedule.
type commitRec struct {
	at  time.Time
	seq int
}

// seqOf returns the paced sequence number that dispatchOp put at the end
// of a stream id ("acct-<run>-<worker>-<seq>"), or -1.
func seqOf(stream string) int {
	i := strings.LastIndexByte(stream, '-')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(stream[i+1:])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

func measureThroughput[TTx any](ctx context.Context, h harness, s sides[TTx], subscribers int) (*ThroughputResult, error) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	mode := "poll"
	if h.dialect == eventfold.Postgres {
		mode = "notify"
	}
	if h.probe != nil && h.probe.mode != "" {
		mode = h.probe.mode
	}
	name := "writes-no-subscribers"
	r := &ThroughputResult{Subscribers: subscribers}
	var n *listener.Notifier
	run := runID("t" + strconv.Itoa(subscribers))
	counts := make([]atomic.Int64, subscribers)
	var stops []func() error
	defer func() {
		for _, stop := range stops {
			_ = stop()
		}
	}()
	if subscribers > 0 {
		name = fmt.Sprintf("writes-%d-subscribers-%s", subscribers, mode)
		opts, notifier, err := wakeup(lctx, h, s, mode, &wg)
		if err != nil {
			return nil, err
		}
		n, r.Wakeup, r.PollIntervalMS = notifier, mode, ms(opts.PollInterval)
		for i := range subscribers {
			o := *opts
			stop, err := follow(lctx, s, &o, "acct-"+run+"-", func(evs []eventfold.Event, _ time.Time) {
				counts[i].Add(int64(len(evs)))
				if h.probe != nil {
					h.probe.batches.Add(1)
				}
			})
			if err != nil {
				return nil, err
			}
			stops = append(stops, stop)
		}
	}
	var committed atomic.Int64
	resetPeakRSS()
	fn := writer(ctx, h, s, run, func(ctx context.Context, evs []eventfold.Event) {
		committed.Add(int64(len(evs)))
		if n != nil {
			n.AfterCommit(ctx, evs)
		}
	})
	lat, errs, elapsed, firstErr := runLoad(ctx, h.cfg.Concurrency, h.cfg.Duration, fn)
	r.Result = summarize(name, lat, errs, elapsed, 1)
	r.Dialect, r.Concurrency = string(h.dialect), h.cfg.Concurrency
	if r.Commands == 0 && firstErr != nil {
		return nil, fmt.Errorf("bench: %s: every command failed: %w", name, firstErr)
	}
	if firstErr != nil {
		fmt.Fprintf(h.progress, "%s: %d errors, first: %v\n", name, errs, firstErr)
	}
	fewest := func() int64 {
		least := int64(-1)
		for i := range counts {
			if c := counts[i].Load(); least < 0 || c < least {
				least = c
			}
		}
		return least
	}
	if subscribers > 0 {
		waitErr := waitDelivered(ctx, h, fewest, committed.Load())
		r.Delivered = fewest()
		for i := range counts {
			if c := counts[i].Load(); c != committed.Load() {
				return nil, fmt.Errorf("bench: %s: subscriber %d saw %d events, %d committed: %v", name, i, c, committed.Load(), waitErr)
			}
		}
	}
	r.PeakRSSBytes = peakRSS()
	return r, nil
}

// waitDelivered waits until delivered() reaches committed, for at most
// 10s plus a few poll intervals.
func waitDelivered(ctx context.Context, h harness, delivered func() int64, committed int64) error {
	deadline := time.Now().Add(10*time.Second + 5*max(h.cfg.PollInterval, notifyFallbackPoll))
	for delivered() < committed {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up waiting for delivery")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// runPaced runs fn at rate calls per second for d, spread over workers
// clients: an open loop, so a slow system shows as latency, not as a lower
// offered rate. A call due while every client is busy waits for the next
// free client (it is never dropped, so the rate holds). It returns once
// every call has returned.
func runPaced(ctx context.Context, rate int, d time.Duration, workers int, fn op) pacedStats {
	interval := time.Second / time.Duration(rate)
	type job struct {
		seq    int
		due    time.Time
		queued bool
	}
	jobs := make(chan job, int(d/interval)+1)
	// outstanding counts the calls sent and not yet returned: queued in
	// jobs, being handed to a client, or running.
	var nerrs, nlate, nqueued, maxd, outstanding atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := range jobs {
				if delay := time.Since(j.due); delay > lateAfter {
					nlate.Add(1)
					if j.queued {
						nqueued.Add(1)
					}
					for {
						m := maxd.Load()
						if int64(delay) <= m || maxd.CompareAndSwap(m, int64(delay)) {
							break
						}
					}
				}
				if err := fn(ctx, w, j.seq); err != nil {
					nerrs.Add(1)
					once.Do(func() { firstErr = err })
				}
				outstanding.Add(-1)
			}
		})
	}
	start := time.Now()
	end := start.Add(d)
	for i := 0; ctx.Err() == nil; i++ {
		at := start.Add(time.Duration(i) * interval)
		if !at.Before(end) {
			break
		}
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		// Queued: the calls not yet returned (running, or waiting for a
		// client) leave no client free for this one.
		jobs <- job{seq: i, due: at, queued: outstanding.Add(1)-1 >= int64(workers)}
	}
	close(jobs)
	wg.Wait()
	return pacedStats{start: start, interval: interval, late: nlate.Load(), queued: nqueued.Load(),
		maxDelay: time.Duration(maxd.Load()), errs: nerrs.Load(), elapsed: time.Since(start), firstErr: firstErr}
}

// pacedStats is what runPaced saw. late counts the calls that started
// more than lateAfter after they were due; queued, those of them that were
// due while every client was busy (the others waited for the scheduler);
// maxDelay is the longest start delay.
type pacedStats struct {
	start    time.Time
	interval time.Duration
	late     int64
	queued   int64
	maxDelay time.Duration
	errs     int64
	elapsed  time.Duration
	firstErr error
}

// due returns when call seq was due.
func (p pacedStats) due(seq int) time.Time { return p.start.Add(time.Duration(seq) * p.interval) }

// lateAfter is how long after it was due a paced call may start before it
// counts as late.
const lateAfter = time.Millisecond

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// warmPgx opens n connections of pool before the measurement starts. A cold
// pool makes the first commands of the first mode connect: they, and the
// Notifier's first pg_notify (which waits for a connection of the writers'
// pool behind them), took up to a second on a loaded machine, and on a quiet
// one still tens of milliseconds, which is the whole p99 of a 5 s run.
func warmPgx(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return fmt.Errorf("bench: connect: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}

// warmSQL is warmPgx for a database/sql pool (its idle limit must be at
// least n to keep them).
func warmSQL(ctx context.Context, db *sql.DB, n int) error {
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range n {
		c, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("bench: connect: %w", err)
		}
		if err := c.PingContext(ctx); err != nil {
			return fmt.Errorf("bench: connect: %w", err)
		}
		conns = append(conns, c)
	}
	return nil
}
