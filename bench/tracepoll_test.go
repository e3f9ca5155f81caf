package bench

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect/mysql"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// pollRead is one timed ReadAll of the polling subscriber, with the
// MariaDB gate takes and gate timeouts/skips of this process during it.
type pollRead struct {
	start, end   time.Duration
	from, last   int64
	n            int
	gates, skips int64
	gaps         int64
}

type pollTraceLog struct {
	eventfold.Log
	t0    time.Time
	mu    sync.Mutex
	reads []pollRead
}

func (l *pollTraceLog) ReadAll(ctx context.Context, opt eventfold.ReadAllOptions) ([]eventfold.Event, error) {
	g0, s0, p0 := mysql.GateTakes(), mysql.GateTimeouts(), mysql.GapReads()
	start := time.Since(l.t0)
	evs, err := l.Log.ReadAll(ctx, opt)
	rd := pollRead{start: start, end: time.Since(l.t0), from: opt.From, n: len(evs), gates: mysql.GateTakes() - g0, skips: mysql.GateTimeouts() - s0, gaps: mysql.GapReads() - p0}
	if len(evs) > 0 {
		rd.last = evs[len(evs)-1].GlobalPosition
	}
	l.mu.Lock()
	l.reads = append(l.reads, rd)
	l.mu.Unlock()
	return evs, err
}

// TestTraceDeliveryPoll traces the delivery workload's polling subscriber
// (EVENTFOLD_TRACE_POLL_DSN: a scratch MariaDB or SQLite database; _RATE,
// _SECONDS, _POLL_MS tune it) and sorts the slowest 1% of events by where
// their time went: waiting for the next poll, reads that started after the
// commit but did not return the event yet (a gap not proven dead), or the
// read that returned it being slow.
func TestTraceDeliveryPoll(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_TRACE_POLL_DSN")
	if dsn == "" {
		t.Skip("EVENTFOLD_TRACE_POLL_DSN not set")
	}
	rate, secs, pollMS := 1000, 5, 10
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_TRACE_RATE")); err == nil {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_TRACE_SECONDS")); err == nil {
		secs = v
	}
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_TRACE_POLL_MS")); err == nil {
		pollMS = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx, err := prepare(ctx, dsn, latencyWorkers+2)
	require.NoError(t, err)
	defer fx.drv.Close()
	require.NoError(t, warmSQL(ctx, fx.drv.DB(), latencyWorkers+2))
	rdrv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	defer rdrv.Close()
	rdrv.DB().SetMaxOpenConns(3)
	rdrv.DB().SetMaxIdleConns(3)
	require.NoError(t, warmSQL(ctx, rdrv.DB(), 3))

	t0 := time.Now()
	now := func() time.Duration { return time.Since(t0) }
	rlog := &pollTraceLog{Log: eventfold.New(rdrv, nil), t0: t0}
	head, err := rlog.Head(ctx)
	require.NoError(t, err)
	run := runID("y")
	var mu sync.Mutex
	commitAt := map[int64]time.Duration{} // position → after-commit hook
	handled := map[int64]time.Duration{}
	tctx, tcancel := context.WithCancel(ctx)
	tdone := make(chan error, 1)
	go func() {
		tdone <- listener.Tail(tctx, rlog, head, &listener.Options{PollInterval: time.Duration(pollMS) * time.Millisecond,
			Filter: listener.Filter{StreamPrefixes: []string{"acct-" + run + "-"}}},
			func(_ context.Context, b listener.Batch) error {
				at := now()
				mu.Lock()
				for _, e := range b.Events {
					handled[e.GlobalPosition] = at
				}
				mu.Unlock()
				return nil
			})
	}()
	exec := func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	o := newOrchestrator(fx.store, exec, fx.sqls, &orchestrator.Config{AfterCommit: func(_ context.Context, evs []eventfold.Event) {
		at := now()
		mu.Lock()
		for _, e := range evs {
			commitAt[e.GlobalPosition] = at
		}
		mu.Unlock()
	}})
	ps := runPaced(ctx, rate, time.Duration(secs)*time.Second, latencyWorkers, dispatchOp(o, run, 1, false, nil))
	require.NoError(t, ps.firstErr)
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(handled) >= len(commitAt)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	tcancel()
	require.NoError(t, <-tdone)

	mu.Lock()
	defer mu.Unlock()
	rlog.mu.Lock()
	defer rlog.mu.Unlock()
	require.Len(t, handled, len(commitAt), "every committed event was handled")
	type lat struct {
		pos int64
		lat time.Duration
	}
	var all []lat
	for p, c := range commitAt {
		all = append(all, lat{p, handled[p] - c})
	}
	slices.SortFunc(all, func(a, b lat) int { return int(a.lat - b.lat) })
	pct := func(p float64) time.Duration { return all[min(len(all)-1, int(float64(len(all))*p))].lat }
	var durs []time.Duration
	var gates, skips, empty, gaps int64
	var gapDurs, plainDurs []time.Duration
	for _, rd := range rlog.reads {
		durs = append(durs, rd.end-rd.start)
		if rd.gaps > 0 {
			gaps++
			gapDurs = append(gapDurs, rd.end-rd.start)
		} else {
			plainDurs = append(plainDurs, rd.end-rd.start)
		}
		gates += rd.gates
		skips += rd.skips
		if rd.n == 0 {
			empty++
		}
	}
	slices.Sort(durs)
	slices.Sort(gapDurs)
	slices.Sort(plainDurs)
	q := func(v []time.Duration, p float64) time.Duration {
		if len(v) == 0 {
			return 0
		}
		return v[min(len(v)-1, int(float64(len(v))*p))]
	}
	t.Logf("%s, rate %d/s for %ds, poll %d ms: %d events, started late %d (every client busy %d), max start delay %v",
		fx.dialect, rate, secs, pollMS, len(all), ps.late, ps.queued, ps.maxDelay)
	t.Logf("commit→handler p50 %v p99 %v max %v; reads %d (%d empty), read time p50 %v p99 %v max %v; gate takes %d, gate timeouts/skips %d",
		pct(0.5), pct(0.99), all[len(all)-1].lat, len(rlog.reads), empty, durs[len(durs)/2], durs[len(durs)*99/100], durs[len(durs)-1], gates, skips)
	t.Logf("reads that found a gap (locking read): %d, time p50 %v p99 %v max %v; other reads %d, time p50 %v p99 %v max %v",
		gaps, q(gapDurs, 0.5), q(gapDurs, 0.99), q(gapDurs, 1), len(plainDurs), q(plainDurs, 0.5), q(plainDurs, 0.99), q(plainDurs, 1))
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	var pollWait, passed, slowRead, other int
	for i, e := range all[int(float64(len(all))*0.99):] {
		c := commitAt[e.pos]
		var first, got *pollRead
		passedBy := 0
		for j := range rlog.reads {
			rd := &rlog.reads[j]
			if rd.start < c {
				continue
			}
			if first == nil {
				first = rd
			}
			if rd.from <= e.pos && rd.n > 0 && rd.last >= e.pos {
				got = rd
				break
			}
			if rd.from <= e.pos {
				passedBy++
			}
		}
		kind := "other"
		switch {
		case got == nil:
			// Read by a read that started before the hook ran.
			other++
		case passedBy > 0:
			kind = "passed over"
			passed++
		case got.end-got.start > got.start-c:
			kind = "slow read"
			slowRead++
		default:
			kind = "poll wait"
			pollWait++
		}
		if i < 12 && got != nil && first != nil {
			t.Logf("pos %d latency %s ms (%s): commit %s, first read after it %s..%s (%d events), %d reads passed it, read that returned it %s..%s (%d events, gap %d, gate takes %d, timeouts/skips %d), handler %s",
				e.pos, ms(e.lat), kind, ms(c), ms(first.start), ms(first.end), first.n, passedBy, ms(got.start), ms(got.end), got.n, got.gaps, got.gates, got.skips, ms(handled[e.pos]))
		}
	}
	t.Logf("slowest 1%%: waiting for the next poll %d, passed over by reads after the commit %d, the returning read slow %d, other %d", pollWait, passed, slowRead, other)
}
