package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestDeliveryBySlice runs the delivery workload's latency modes in the
// order EVENTFOLD_SLICE_MODES names (default "notify,poll") on the fresh
// database EVENTFOLD_SLICE_DSN (PostgreSQL) and prints, per 500 ms slice of
// each mode, the writers' due→commit and dispatch times, the client's and
// the server's CPU per command and the writers' wait events (sampled from
// pg_stat_activity): where the first seconds of a run differ from the
// rest. A diagnostic: it runs only with EVENTFOLD_SLICE_DSN set.
func TestDeliveryBySlice(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_SLICE_DSN")
	if dsn == "" {
		t.Skip("EVENTFOLD_SLICE_DSN not set")
	}
	modes := []string{"notify", "poll"}
	if v := os.Getenv("EVENTFOLD_SLICE_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	ctx := context.Background()
	cfg := DeliveryConfig{DSN: dsn, Duration: 4 * time.Second}.withDefaults()
	if v, err := time.ParseDuration(os.Getenv("EVENTFOLD_SLICE_DURATION")); err == nil {
		cfg.Duration = v
	}
	writers := latencyWorkers + 4
	fx, err := prepare(ctx, dsn, writers)
	require.NoError(t, err)
	defer fx.drv.Close()
	wpool, err := pgxpool.New(ctx, withPoolSize(dsn, writers+1))
	require.NoError(t, err)
	defer wpool.Close()
	rpool, err := pgxpool.New(ctx, withPoolSize(dsn, 4))
	require.NoError(t, err)
	defer rpool.Close()
	require.NoError(t, warmPgx(ctx, wpool, writers+1))
	require.NoError(t, warmPgx(ctx, rpool, 4))
	mon, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer mon.Close(context.Background())
	var writerPIDs []int
	// The writers' backends: every connection of wpool.
	var conns []*pgxpool.Conn
	for range writers + 1 {
		c, err := wpool.Acquire(ctx)
		require.NoError(t, err)
		conns = append(conns, c)
		writerPIDs = append(writerPIDs, int(c.Conn().PgConn().PID()))
	}
	for _, c := range conns {
		c.Release()
	}
	h := harness{cfg: cfg, dialect: fx.dialect, sqls: fx.sqls, progress: os.Stderr, logger: nil}
	h.logger = nil
	s := sides[pgx.Tx]{
		writer: eventfold.New[pgx.Tx](pgxdriver.New(wpool), nil),
		reader: eventfold.New[pgx.Tx](pgxdriver.New(rpool), nil),
		exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		},
	}
	switch w := os.Getenv("EVENTFOLD_SLICE_WARM"); w {
	case "":
	case "dispatch", "otherpool":
		ws := s
		if w == "otherpool" {
			// Warm the database (tables, indexes, shared buffers) through
			// another pool, so that the writers' backends stay cold.
			opool, err := pgxpool.New(ctx, withPoolSize(dsn, writers+1))
			require.NoError(t, err)
			defer opool.Close()
			ws.writer = eventfold.New[pgx.Tx](pgxdriver.New(opool), nil)
		}
		t0 := time.Now()
		ps := runPaced(ctx, cfg.Rate, 500*time.Millisecond, latencyWorkers, writer(ctx, h, ws, runID("w"), func(context.Context, []eventfold.Event) {}))
		t.Logf("warm-up (%s): 500 ms of paced dispatch took %v, late %d", w, time.Since(t0).Round(time.Millisecond), ps.late)
		if w == "otherpool" {
			ws.writer = nil
		}
	default:
		t.Fatalf("EVENTFOLD_SLICE_WARM: want dispatch or otherpool, not %q", w)
	}
	for i, mode := range modes {
		sliceMode(t, ctx, h, s, fx.drv.DB(), mon, writerPIDs, fmt.Sprintf("#%d %s", i, mode), mode)
	}
}

type sliceRec struct {
	seq           int
	start, commit time.Time
}

func sliceMode(t *testing.T, ctx context.Context, h harness, s sides[pgx.Tx], _ any, mon *pgx.Conn, pids []int, label, mode string) {
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	h.logger = discardLogger()
	opts, n, err := wakeup(lctx, h, s, mode, &wg)
	require.NoError(t, err)
	run := runID(mode[:1])
	var delivered atomic.Int64
	stop, err := follow(lctx, s, opts, "acct-"+run+"-", func(evs []eventfold.Event, _ time.Time) { delivered.Add(int64(len(evs))) })
	require.NoError(t, err)

	var mu sync.Mutex
	var recs []sliceRec
	starts := sync.Map{}
	fn0 := writer(ctx, h, s, run, func(ctx context.Context, evs []eventfold.Event) {
		now := time.Now()
		mu.Lock()
		for _, e := range evs {
			seq := seqOf(e.StreamID)
			st, _ := starts.Load(seq)
			recs = append(recs, sliceRec{seq: seq, start: st.(time.Time), commit: now})
		}
		mu.Unlock()
		if n != nil {
			n.AfterCommit(ctx, evs)
		}
	})
	fn := func(c context.Context, w, seq int) error {
		starts.Store(seq, time.Now())
		return fn0(c, w, seq)
	}
	// CPU and wait events per slice, sampled on the side.
	const slice = 500 * time.Millisecond
	type cpuPt struct {
		at             time.Time
		client, server time.Duration
	}
	var cpus []cpuPt
	waits := map[int]map[string]int{} // slice → wait → samples
	sctx, scancel := context.WithCancel(ctx)
	var swg sync.WaitGroup
	t0 := time.Now()
	srvCPU := func() time.Duration {
		var sum time.Duration
		for _, p := range pids {
			c, _ := procCPU(p)
			sum += c
		}
		return sum
	}
	swg.Go(func() {
		tk := time.NewTicker(slice)
		defer tk.Stop()
		cpus = append(cpus, cpuPt{time.Now(), processCPU(), srvCPU()})
		for {
			select {
			case <-sctx.Done():
				cpus = append(cpus, cpuPt{time.Now(), processCPU(), srvCPU()})
				return
			case <-tk.C:
				cpus = append(cpus, cpuPt{time.Now(), processCPU(), srvCPU()})
			}
		}
	})
	ipids := make([]int32, len(pids))
	for i, p := range pids {
		ipids[i] = int32(p)
	}
	swg.Go(func() {
		for sctx.Err() == nil {
			// ctx, not sctx: pgx closes a connection whose query is cancelled.
			rows, err := mon.Query(ctx, `select coalesce(wait_event_type||':'||wait_event, 'CPU'), state from pg_stat_activity where pid = any($1) and state <> 'idle'`, ipids)
			if err != nil {
				return
			}
			k := int(time.Since(t0) / slice)
			for rows.Next() {
				var w, st string
				if rows.Scan(&w, &st) == nil {
					if waits[k] == nil {
						waits[k] = map[string]int{}
					}
					waits[k][w+"/"+st]++
				}
			}
			rows.Close()
			time.Sleep(10 * time.Millisecond)
		}
	})
	ps := runPaced(ctx, h.cfg.Rate, h.cfg.Duration, latencyWorkers, fn)
	scancel()
	swg.Wait()
	_ = waitDelivered(ctx, h, delivered.Load, int64(len(recs)))
	require.NoError(t, stop())
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s: %d commands, late %d (queued %d), max start delay %v, notifications %d\n", label, len(recs), ps.late, ps.queued, ps.maxDelay.Round(time.Millisecond), func() uint64 {
		if n != nil {
			return n.Sent()
		}
		return 0
	}())
	// per due-slice: due→commit and dispatch (start→commit) p50/p99
	bySlice := map[int][]sliceRec{}
	for _, r := range recs {
		k := int(ps.due(r.seq).Sub(ps.start) / slice)
		bySlice[k] = append(bySlice[k], r)
	}
	keys := slices.Sorted(func(yield func(int) bool) {
		for k := range bySlice {
			if !yield(k) {
				return
			}
		}
	})
	// CPU per wall slice, mapped from t0 (the sampler's start ~ ps.start)
	for _, k := range keys {
		rs := bySlice[k]
		var dc, dd []time.Duration
		for _, r := range rs {
			dc = append(dc, r.commit.Sub(ps.due(r.seq)))
			dd = append(dd, r.commit.Sub(r.start))
		}
		slices.Sort(dc)
		slices.Sort(dd)
		line := fmt.Sprintf("  %4.1fs n %4d due→commit p50 %6.1f p99 %6.1f  dispatch p50 %5.1f p99 %6.1f ms", float64(k)*slice.Seconds(), len(rs),
			percentileMS(dc, .5), percentileMS(dc, .99), percentileMS(dd, .5), percentileMS(dd, .99))
		if k+1 < len(cpus) {
			a, b := cpus[k], cpus[k+1]
			// commands committed in that wall slice
			cnt := 0
			for _, r := range recs {
				if !r.commit.Before(a.at) && r.commit.Before(b.at) {
					cnt++
				}
			}
			if cnt > 0 {
				line += fmt.Sprintf("  | wall: %4d commits, CPU/cmd client %4d µs server %4d µs", cnt, (b.client-a.client).Microseconds()/int64(cnt), (b.server-a.server).Microseconds()/int64(cnt))
			}
		}
		if w := waits[k]; len(w) > 0 {
			type kv struct {
				k string
				v int
			}
			var l []kv
			for a, b := range w {
				l = append(l, kv{a, b})
			}
			sort.Slice(l, func(i, j int) bool { return l[i].v > l[j].v })
			line += " | waits"
			for i, x := range l {
				if i == 5 {
					break
				}
				line += fmt.Sprintf(" %s=%d", x.k, x.v)
			}
		}
		sb.WriteString(line + "\n")
	}
	if len(cpus) >= 2 {
		a, b := cpus[0], cpus[len(cpus)-1]
		fmt.Fprintf(&sb, "  whole mode: CPU/cmd client %d µs, server (writers' backends) %d µs\n",
			(b.client-a.client).Microseconds()/int64(max(1, len(recs))), (b.server-a.server).Microseconds()/int64(max(1, len(recs))))
	}
	t.Log("\n" + sb.String())
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
