package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// traceRec collects timestamps (since t0) of every step between a commit
// and the subscriber's handler.
type traceRec struct {
	t0 time.Time
	mu sync.Mutex
	// per dispatch: xid, start, commit (after-commit hook), return
	disp map[int64]*traceDisp // by xid
	// notifications sent: start, end, payload position
	notes []traceSpan
	// listener broadcasts: time, last position received
	recv []traceSpan
	// reads: start, end, from, last position returned, snapshot after
	reads []traceRead
	// handler: per position, time
	handled map[int64]time.Duration
}

type traceDisp struct {
	xid                    int64
	pos                    int64
	start, commit, return_ time.Duration
	ph                     tracePhases
}

// tracePhases are the steps of one dispatch (since t0): when the append,
// the reducer and the COMMIT started and ended. The transaction holds its
// xid, and with it the read horizon, from inside the append to the end of
// the COMMIT.
type tracePhases struct {
	appendStart, appendEnd, reduceStart, reduceEnd, commitStart, commitEnd time.Duration
}

type tracePhasesKey struct{}

// traceObserver records each dispatch's steps into the *tracePhases its
// StartDispatch puts in the context.
type traceObserver struct{ rec *traceRec }

func (o traceObserver) StartDispatch(ctx context.Context, _ orchestrator.Command) (context.Context, func(*orchestrator.Result, error)) {
	return context.WithValue(ctx, tracePhasesKey{}, &tracePhases{}), func(*orchestrator.Result, error) {}
}

func (o traceObserver) StartStep(ctx context.Context, s orchestrator.Step) (context.Context, func(error)) {
	ph, _ := ctx.Value(tracePhasesKey{}).(*tracePhases)
	if ph == nil {
		return ctx, func(error) {}
	}
	var start, end *time.Duration
	switch s.Kind {
	case "append":
		start, end = &ph.appendStart, &ph.appendEnd
	case "reducer":
		start, end = &ph.reduceStart, &ph.reduceEnd
	case "commit":
		start, end = &ph.commitStart, &ph.commitEnd
	default:
		return ctx, func(error) {}
	}
	*start = o.rec.now()
	return ctx, func(error) { *end = o.rec.now() }
}

func (traceObserver) AttemptFailed(context.Context, orchestrator.Command, int, error, bool) {}
func (traceObserver) BatchCommitted(context.Context, int)                                   {}
func (traceObserver) EventMetadata(context.Context, map[string]any)                         {}

type traceSpan struct {
	start, end time.Duration
	pos        int64
}

type traceRead struct {
	start, end time.Duration
	from, last int64
	n          int
	xmin, xmax int64
	xip        string
}

func (r *traceRec) now() time.Duration { return time.Since(r.t0) }

// traceLog wraps the subscriber's Log: it times every ReadAll and records
// the snapshot (xmin:xmax:xip) right after it on a connection of its own.
type traceLog struct {
	eventfold.Log
	rec  *traceRec
	conn *pgx.Conn
}

func (l *traceLog) ReadAll(ctx context.Context, opt eventfold.ReadAllOptions) ([]eventfold.Event, error) {
	start := l.rec.now()
	evs, err := l.Log.ReadAll(ctx, opt)
	end := l.rec.now()
	rd := traceRead{start: start, end: end, from: opt.From, n: len(evs)}
	if len(evs) > 0 {
		rd.last = evs[len(evs)-1].GlobalPosition
	}
	var snap string
	if serr := l.conn.QueryRow(ctx, "SELECT pg_current_snapshot()::text").Scan(&snap); serr == nil {
		parts := strings.Split(snap, ":")
		rd.xmin, _ = strconv.ParseInt(parts[0], 10, 64)
		rd.xmax, _ = strconv.ParseInt(parts[1], 10, 64)
		rd.xip = parts[2]
	}
	l.rec.mu.Lock()
	l.rec.reads = append(l.rec.reads, rd)
	l.rec.mu.Unlock()
	return evs, err
}

// traceWriterLog makes the Notifier's pg_notify timed.
type traceWriterLog struct {
	eventfold.Log
	rec *traceRec
}

func (l *traceWriterLog) Ops() eventfold.Ops { return &traceOps{Ops: l.Log.Ops(), rec: l.rec} }

type traceOps struct {
	eventfold.Ops
	rec *traceRec
}

func (o *traceOps) Notify(ctx context.Context, channel, payload string) error {
	start := o.rec.now()
	err := o.Ops.Notify(ctx, channel, payload)
	p, _ := strconv.ParseInt(payload, 10, 64)
	end := o.rec.now()
	o.rec.mu.Lock()
	o.rec.notes = append(o.rec.notes, traceSpan{start: start, end: end, pos: p})
	o.rec.mu.Unlock()
	return err
}

// traceBroadcaster records each broadcast of the LISTEN connection.
type traceBroadcaster struct {
	rec *traceRec
	sig *listener.Signal
	l   *pgxdriver.Listener
}

func (b *traceBroadcaster) Broadcast() {
	t := b.rec.now()
	b.rec.mu.Lock()
	b.rec.recv = append(b.rec.recv, traceSpan{start: t, end: t, pos: b.l.LastPosition()})
	b.rec.mu.Unlock()
	b.sig.Broadcast()
}

// TestTraceDelivery traces each event of the delivery workload (NOTIFY
// mode, PostgreSQL) from its commit to the subscriber's handler and prints
// the slowest ones step by step. It runs only with EVENTFOLD_TRACE_DSN set
// (a scratch database on a private cluster: other sessions' transactions
// hold the read horizon back); EVENTFOLD_TRACE_RATE, _SECONDS tune it;
// EVENTFOLD_TRACE_WARM=dispatch runs 1 s of the load untraced first (any
// other value: the writers' connections are only opened first).
func TestTraceDelivery(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_TRACE_DSN")
	if dsn == "" {
		t.Skip("EVENTFOLD_TRACE_DSN not set")
	}
	rate, secs := 1000, 5
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_TRACE_RATE")); err == nil {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_TRACE_SECONDS")); err == nil {
		secs = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx, err := prepare(ctx, dsn, 4)
	require.NoError(t, err)
	defer fx.drv.Close()
	wpool, err := pgxpool.New(ctx, withPoolSize(dsn, latencyWorkers+1))
	require.NoError(t, err)
	defer wpool.Close()
	if os.Getenv("EVENTFOLD_TRACE_WARM") != "" {
		var conns []*pgxpool.Conn
		for range latencyWorkers + 1 {
			c, err := wpool.Acquire(ctx)
			require.NoError(t, err)
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Release()
		}
	}
	rpool, err := pgxpool.New(ctx, withPoolSize(dsn, 2))
	require.NoError(t, err)
	defer rpool.Close()
	sconn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer sconn.Close(context.Background())
	var off int64
	require.NoError(t, sconn.QueryRow(ctx, "SELECT last_value FROM eventfold.position_offset").Scan(&off))

	rec := &traceRec{t0: time.Now(), disp: map[int64]*traceDisp{}, handled: map[int64]time.Duration{}}
	writer := eventfold.New[pgx.Tx](pgxdriver.New(wpool), nil)
	reader := eventfold.New[pgx.Tx](pgxdriver.New(rpool), nil)
	exec := func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}
	if os.Getenv("EVENTFOLD_TRACE_QUEUE_REDUCER") != "" {
		// An experiment: the reducer's upsert goes with COMMIT in one
		// pipeline (its error would surface at COMMIT), so the xid is held
		// for one round trip fewer.
		exec = func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			cq, ok := tx.(interface {
				QueueBeforeCommit(sql string, args []any, onError func(error) error)
			})
			if !ok {
				return fmt.Errorf("transaction %T cannot queue writes", tx)
			}
			cq.QueueBeforeCommit(q, args, func(err error) error { return err })
			return nil
		}
	}

	if os.Getenv("EVENTFOLD_TRACE_WARM") == "dispatch" {
		// One second of the same paced load first, unmeasured, as esctl
		// bench's delivery warm-up: the writers' backends and the Store
		// start warm (a new backend spends ~20 ms of server CPU on its
		// first commands).
		h := harness{cfg: DeliveryConfig{}.withDefaults(), dialect: fx.dialect, sqls: sqlFor2(t, fx), logger: slog.New(slog.DiscardHandler)}
		wo := newOrchestrator(writer, exec, h.sqls, nil)
		ps := runPaced(ctx, rate, time.Second, latencyWorkers, dispatchOp(wo, runID("w"), 1, false, nil))
		require.NoError(t, ps.firstErr)
		t.Logf("warm-up: 1 s of paced dispatch, not traced (late %d)", ps.late)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	sig := listener.NewSignal()
	n := listener.NewNotifier(&traceWriterLog{Log: writer, rec: rec}, nil)
	tb := &traceBroadcaster{rec: rec, sig: sig}
	l := &pgxdriver.Listener{ConnString: dsn, Signal: tb}
	tb.l = l
	wg.Go(func() { _ = l.Run(ctx) })
	wg.Go(func() { _ = n.Run(ctx) })
	for !l.Connected() {
		time.Sleep(5 * time.Millisecond)
	}
	head, err := reader.Head(ctx)
	require.NoError(t, err)
	run := runID("x")
	tctx, tcancel := context.WithCancel(ctx)
	tdone := make(chan error, 1)
	go func() {
		tdone <- listener.Tail(tctx, &traceLog{Log: reader, rec: rec, conn: sconn}, head,
			&listener.Options{PollInterval: notifyFallbackPoll, Wakeup: sig, Filter: listener.Filter{StreamPrefixes: []string{"acct-" + run + "-"}}},
			func(_ context.Context, b listener.Batch) error {
				at := rec.now()
				rec.mu.Lock()
				for _, e := range b.Events {
					rec.handled[e.GlobalPosition] = at
				}
				rec.mu.Unlock()
				return nil
			})
	}()

	o := newOrchestrator(writer, exec, sqlFor2(t, fx), &orchestrator.Config{Observer: traceObserver{rec}, AfterCommit: func(ctx context.Context, evs []eventfold.Event) {
		at := rec.now()
		ph, _ := ctx.Value(tracePhasesKey{}).(*tracePhases)
		rec.mu.Lock()
		for _, e := range evs {
			x := e.GlobalPosition>>20 - off
			d := rec.disp[x]
			if d == nil {
				d = &traceDisp{xid: x}
				rec.disp[x] = d
			}
			d.pos, d.commit = e.GlobalPosition, at
			if ph != nil {
				d.ph = *ph
			}
		}
		rec.mu.Unlock()
		n.AfterCommit(ctx, evs)
	}})
	fn := func(_ context.Context, w, seq int) error {
		start := rec.now()
		res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: deposit{
			Account: fmt.Sprintf("acct-%s-%d-%d", run, w, seq), Amount: 1, Events: 1}})
		end := rec.now()
		if err == nil && len(res.Events) > 0 {
			rec.mu.Lock()
			d := rec.disp[res.Events[0].GlobalPosition>>20-off]
			d.start, d.return_ = start, end
			rec.mu.Unlock()
		}
		return err
	}
	ps := runPaced(ctx, rate, time.Duration(secs)*time.Second, latencyWorkers, fn)
	late, maxDelay, errs, firstErr := ps.late, ps.maxDelay, ps.errs, ps.firstErr
	require.NoError(t, firstErr)
	require.Zero(t, errs)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec.mu.Lock()
		done := len(rec.handled) >= len(rec.disp)
		rec.mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	tcancel()
	require.NoError(t, <-tdone)
	cancel()
	wg.Wait()

	// GC pauses (since t0) from the runtime's ring of the last 256.
	var msx runtime.MemStats
	runtime.ReadMemStats(&msx)
	type gcPause struct{ start, end time.Duration }
	var gcs []gcPause
	var gcTotal, gcMax time.Duration
	for i := range min(int(msx.NumGC), 256) {
		end := time.Unix(0, int64(msx.PauseEnd[i])).Sub(rec.t0)
		p := time.Duration(msx.PauseNs[i])
		if end < 0 {
			continue
		}
		gcs = append(gcs, gcPause{end - p, end})
		gcTotal += p
		gcMax = max(gcMax, p)
	}
	gcIn := func(from, to time.Duration) string {
		var parts []string
		for _, g := range gcs {
			if g.end >= from && g.start <= to {
				parts = append(parts, fmt.Sprintf("%.2f ms at %.2f", float64((g.end-g.start).Microseconds())/1000, float64(g.start.Microseconds())/1000))
			}
		}
		if len(parts) == 0 {
			return "none"
		}
		return strings.Join(parts, ", ")
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.handled, len(rec.disp), "every committed event was handled")
	type lat struct {
		d   *traceDisp
		lat time.Duration
	}
	var all []lat
	for _, d := range rec.disp {
		all = append(all, lat{d, rec.handled[d.pos] - d.commit})
	}
	slices.SortFunc(all, func(a, b lat) int { return int(a.lat - b.lat) })
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))].lat }
	emptyReads := 0
	for _, rd := range rec.reads {
		if rd.n == 0 {
			emptyReads++
		}
	}
	t.Logf("rate %d/s for %ds: %d events, started late %d (every client busy: %d), longest start delay %v; notifications sent %d, received %d; reads %d (%d empty)",
		rate, secs, len(all), late, ps.queued, maxDelay, len(rec.notes), len(rec.recv), len(rec.reads), emptyReads)
	t.Logf("commit→handler p50 %v p99 %v max %v", pct(0.5), pct(0.99), all[len(all)-1].lat)
	var notes []time.Duration
	for _, nt := range rec.notes {
		notes = append(notes, nt.end-nt.start)
	}
	slices.Sort(notes)
	if len(notes) > 0 {
		t.Logf("pg_notify round trip p50 %v p99 %v max %v", notes[len(notes)/2], notes[len(notes)*99/100], notes[len(notes)-1])
	}
	for _, nt := range rec.notes {
		if nt.end-nt.start > 20*time.Millisecond {
			t.Logf("slow pg_notify: %.2f..%.2f ms (%v)", float64(nt.start.Microseconds())/1000, float64(nt.end.Microseconds())/1000, nt.end-nt.start)
		}
	}

	// Where the time went, per slow event (p99 and above).
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	var horizonHeld, horizonForeign, notifyLate, readLate, other int
	blockers := map[int64]*traceDisp{}
	for _, e := range all[int(float64(len(all))*0.99):] {
		d := e.d
		var sb strings.Builder
		fmt.Fprintf(&sb, "\nxid %d  latency %s ms  dispatch start %s  commit hook %s  returned %s\n", d.xid, ms(e.lat), ms(d.start), ms(d.commit), ms(d.return_))
		for _, nt := range rec.notes {
			if nt.end >= d.commit && nt.pos >= d.pos {
				fmt.Fprintf(&sb, "  pg_notify(%d) sent %s..%s (+%s after commit)\n", nt.pos>>20-off, ms(nt.start), ms(nt.end), ms(nt.start-d.commit))
				break
			}
		}
		var recvAt time.Duration = -1
		for _, rv := range rec.recv {
			if rv.start >= d.commit && rv.pos >= d.pos {
				recvAt = rv.start
				fmt.Fprintf(&sb, "  notification (up to xid %d) received, Signal broadcast at %s (+%s)\n", rv.pos>>20-off, ms(rv.start), ms(rv.start-d.commit))
				break
			}
		}
		var blocked, foreign bool
		var delivering traceRead
		for _, rd := range rec.reads {
			if rd.end < d.commit || rd.start > rec.handled[d.pos] {
				continue
			}
			got := rd.n > 0 && rd.last >= d.pos && rd.from <= d.pos
			fmt.Fprintf(&sb, "  ReadAll %s..%s from xid %d: %d events (to xid %d); snapshot after: xmin %d xmax %d running [%s]\n",
				ms(rd.start), ms(rd.end), rd.from>>20-off, rd.n, rd.last>>20-off, rd.xmin-off, rd.xmax-off, rd.xip)
			if !got && rd.start > d.commit {
				blocked = true
				if b := rec.disp[rd.xmin-off]; b != nil && rd.xmin-off < d.xid {
					fmt.Fprintf(&sb, "    held back by xid %d: dispatch started %s, committed %s (%s after this one)\n", b.xid, ms(b.start), ms(b.commit), ms(b.commit-d.commit))
					if blockers[b.xid] == nil {
						blockers[b.xid] = b
						p := b.ph
						fmt.Fprintf(&sb, "      xid %d's steps: append %s..%s, reducer %s..%s, commit %s..%s, hook %s; GC pauses in append..commit: %s\n",
							b.xid, ms(p.appendStart), ms(p.appendEnd), ms(p.reduceStart), ms(p.reduceEnd), ms(p.commitStart), ms(p.commitEnd), ms(b.commit), gcIn(p.appendStart, p.commitEnd))
					}
				} else if rd.xmin-off < d.xid {
					foreign = true
					fmt.Fprintf(&sb, "    held back by xid %d, not one of this test's dispatches (another database or session)\n", rd.xmin-off)
				}
			}
			if got {
				delivering = rd
				break
			}
		}
		fmt.Fprintf(&sb, "  handler at %s", ms(rec.handled[d.pos]))
		switch {
		case blocked && foreign:
			horizonForeign++
		case blocked:
			horizonHeld++
		case recvAt < 0 || recvAt > delivering.start:
			notifyLate++
		case delivering.start-recvAt > 2*time.Millisecond || delivering.end-delivering.start > 2*time.Millisecond:
			readLate++
		default:
			other++
		}
		t.Log(sb.String())
	}
	t.Logf("slowest 1%%: held back by the horizon %d (by a transaction not of this test: %d more), notification late %d, read late/slow %d, other %d", horizonHeld, horizonForeign, notifyLate, readLate, other)

	// Where the blocking transactions' xid-holding time went, against
	// every dispatch: the append (the xid is taken inside it), the gap
	// before the reducer, the reducer, the gap before COMMIT, the COMMIT.
	phaseLine := func(name string, ds []*traceDisp) {
		parts := []struct {
			name string
			f    func(p tracePhases) time.Duration
		}{
			{"append", func(p tracePhases) time.Duration { return p.appendEnd - p.appendStart }},
			{"append→reducer", func(p tracePhases) time.Duration { return p.reduceStart - p.appendEnd }},
			{"reducer", func(p tracePhases) time.Duration { return p.reduceEnd - p.reduceStart }},
			{"reducer→commit", func(p tracePhases) time.Duration { return p.commitStart - p.reduceEnd }},
			{"commit", func(p tracePhases) time.Duration { return p.commitEnd - p.commitStart }},
			{"append..commit end", func(p tracePhases) time.Duration { return p.commitEnd - p.appendStart }},
		}
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s (%d):", name, len(ds))
		for _, pt := range parts {
			var v []time.Duration
			for _, d := range ds {
				v = append(v, pt.f(d.ph))
			}
			slices.Sort(v)
			if len(v) == 0 {
				continue
			}
			fmt.Fprintf(&sb, "  %s p50 %s p99 %s max %s", pt.name, ms(v[len(v)/2]), ms(v[len(v)*99/100]), ms(v[len(v)-1]))
		}
		t.Log(sb.String())
	}
	var alld, blockd []*traceDisp
	for _, e := range all {
		alld = append(alld, e.d)
	}
	for _, b := range blockers {
		blockd = append(blockd, b)
	}
	phaseLine("steps of every dispatch, ms", alld)
	phaseLine("steps of the transactions that held the slowest 1% back, ms", blockd)
	t.Logf("GC: %d cycles during the run, pauses total %s ms, max %s ms", len(gcs), ms(gcTotal), ms(gcMax))
}

func sqlFor2(t *testing.T, fx *fixture) dialectSQL {
	t.Helper()
	return fx.sqls
}
