package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/pgxdriver"
)

// cpuTracer records each statement's server CPU (the backend's, from
// /proc) and wall time.
type cpuTracer struct {
	pid   int
	cpu0  time.Duration
	t0    time.Time
	sql   string
	lines *[]string
}

func (c *cpuTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.cpu0, _ = schedCPU(c.pid)
	c.t0, c.sql = time.Now(), d.SQL
	return ctx
}

func (c *cpuTracer) TraceQueryEnd(_ context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) { c.end() }

func (c *cpuTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	c.cpu0, _ = schedCPU(c.pid)
	var qs []string
	for _, q := range d.Batch.QueuedQueries {
		qs = append(qs, strings.Fields(q.SQL)[0])
	}
	c.t0, c.sql = time.Now(), "batch "+strings.Join(qs, ";")
	return ctx
}
func (c *cpuTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *cpuTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     { c.end() }
func (c *cpuTracer) TracePrepareStart(ctx context.Context, _ *pgx.Conn, d pgx.TracePrepareStartData) context.Context {
	c.cpu0, _ = schedCPU(c.pid)
	c.t0, c.sql = time.Now(), "prepare "+d.SQL
	return ctx
}
func (c *cpuTracer) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) { c.end() }

func (c *cpuTracer) end() {
	cpu, _ := schedCPU(c.pid)
	q := strings.Join(strings.Fields(c.sql), " ")
	if len(q) > 70 {
		q = q[:70]
	}
	*c.lines = append(*c.lines, fmt.Sprintf("    %-70s wall %6.2f ms cpu %5d µs", q, ms(time.Since(c.t0)), (cpu-c.cpu0).Microseconds()))
}

// TestColdBackendCost dispatches the delivery workload's command a few
// times, one after the other, through a pool of one fresh connection and
// prints each dispatch's wall time and its backend's CPU time, statement by
// statement: what a new connection's first commands cost the server. A
// diagnostic: it runs only with EVENTFOLD_SLICE_DSN set.
func TestColdBackendCost(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_SLICE_DSN")
	if dsn == "" {
		t.Skip("EVENTFOLD_SLICE_DSN not set")
	}
	ctx := context.Background()
	fx, err := prepare(ctx, dsn, 2)
	require.NoError(t, err)
	defer fx.drv.Close()
	for round := range 2 {
		var lines []string
		tr := &cpuTracer{lines: &lines}
		pc, err := pgxpool.ParseConfig(withPoolSize(dsn, 1))
		require.NoError(t, err)
		pc.ConnConfig.Tracer = tr
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		require.NoError(t, err)
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		tr.pid = int(c.Conn().PgConn().PID())
		c.Release()
		h := harness{cfg: DeliveryConfig{}.withDefaults(), dialect: fx.dialect, sqls: fx.sqls, logger: discardLogger()}
		s := sides[pgx.Tx]{writer: eventfold.New[pgx.Tx](pgxdriver.New(pool), nil),
			exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
				_, err := tx.Exec(ctx, q, args...)
				return err
			}}
		fn := writer(ctx, h, s, runID("c"), func(context.Context, []eventfold.Event) {})
		var sb strings.Builder
		fmt.Fprintf(&sb, "round %d (a new connection, pid %d)\n", round, tr.pid)
		for i := range 8 {
			lines = lines[:0]
			cpu0, _ := schedCPU(tr.pid)
			t0 := time.Now()
			require.NoError(t, fn(ctx, 0, i))
			cpu1, _ := schedCPU(tr.pid)
			fmt.Fprintf(&sb, "  dispatch %d: wall %.2f ms, backend CPU %d µs\n", i, ms(time.Since(t0)), (cpu1 - cpu0).Microseconds())
			if i < 2 || i >= 5 {
				sb.WriteString(strings.Join(lines, "\n") + "\n")
			}
		}
		t.Log("\n" + sb.String())
		pool.Close()
	}
}

// schedCPU is a process's time on a CPU from /proc/<pid>/schedstat
// (nanoseconds; /proc/<pid>/stat counts 10 ms ticks).
func schedCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, false
	}
	var ns int64
	if _, err := fmt.Sscan(f[0], &ns); err != nil {
		return 0, false
	}
	return time.Duration(ns), true
}

// TestColdStartCPU measures what a writer pool's first commands cost: 16
// clients on a new pool (new PostgreSQL backends) and a new Store dispatch
// 20 commands each as fast as they can, then 20 more each; it prints the
// writers' backends' CPU time (from /proc/<pid>/schedstat, so the server
// must run on this machine) and this process's, per command, for the first
// and the second 20. CPU time, unlike latency, hardly depends on the
// machine's load. A diagnostic: it runs only with EVENTFOLD_SLICE_DSN set.
func TestColdStartCPU(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_SLICE_DSN")
	if dsn == "" {
		t.Skip("EVENTFOLD_SLICE_DSN not set")
	}
	ctx := context.Background()
	fx, err := prepare(ctx, dsn, 2)
	require.NoError(t, err)
	defer fx.drv.Close()
	const clients, per = 16, 20
	pool, err := pgxpool.New(ctx, withPoolSize(dsn, clients+1))
	require.NoError(t, err)
	defer pool.Close()
	require.NoError(t, warmPgx(ctx, pool, clients+1)) // connected, nothing run yet
	var pids []int
	var conns []*pgxpool.Conn
	for range clients + 1 {
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		conns = append(conns, c)
		pids = append(pids, int(c.Conn().PgConn().PID()))
	}
	for _, c := range conns {
		c.Release()
	}
	srv := func() (sum time.Duration) {
		for _, p := range pids {
			c, _ := schedCPU(p)
			sum += c
		}
		return sum
	}
	h := harness{cfg: DeliveryConfig{}.withDefaults(), dialect: fx.dialect, sqls: fx.sqls, logger: discardLogger()}
	s := sides[pgx.Tx]{writer: eventfold.New[pgx.Tx](pgxdriver.New(pool), nil),
		exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		}}
	fn := writer(ctx, h, s, runID("s"), func(context.Context, []eventfold.Event) {})
	for round, name := range []string{"first", "second"} {
		s0, c0, t0 := srv(), processCPU(), time.Now()
		var wg sync.WaitGroup
		for w := range clients {
			wg.Go(func() {
				for i := range per {
					require.NoError(t, fn(ctx, w, round*per+i))
				}
			})
		}
		wg.Wait()
		n := int64(clients * per)
		t.Logf("%s %d commands (%d clients): wall %v, server CPU %d µs/command, client CPU %d µs/command",
			name, n, clients, time.Since(t0).Round(time.Millisecond), (srv()-s0).Microseconds()/n, (processCPU()-c0).Microseconds()/n)
	}
}
