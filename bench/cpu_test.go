package bench

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/pgxdriver"
)

// clusterCPU returns the CPU time of a PostgreSQL cluster so far: the
// postmaster's own and its reaped children's, plus every live child's
// (from /proc, in clock ticks of 10 ms).
func clusterCPU(t *testing.T, postmaster int) time.Duration {
	t.Helper()
	field := statFields // fields from 3 (state) on
	ticks := func(f []string, idx ...int) int64 {
		var n int64
		for _, i := range idx {
			v, _ := strconv.ParseInt(f[i-3], 10, 64)
			n += v
		}
		return n
	}
	pm := field(postmaster)
	require.NotNil(t, pm, "no process %d", postmaster)
	total := ticks(pm, 14, 15, 16, 17)
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f := field(pid)
		if f == nil || f[1] != strconv.Itoa(postmaster) { // field 4: ppid
			continue
		}
		total += ticks(f, 14, 15)
	}
	return time.Duration(total) * 10 * time.Millisecond
}

// TestDeliveryCPU runs the delivery latency test's modes alone, in turn
// (ABAB…), on a private PostgreSQL cluster (EVENTFOLD_CPU_DSN, its
// postmaster's pid in EVENTFOLD_CPU_PGPID) and prints each mode's CPU per
// command, this process's and the cluster's: what waking subscribers by
// NOTIFY costs against polling, independent of the machine's load.
// EVENTFOLD_CPU_MODES lists the modes (notify, poll, notify-min<ms>),
// EVENTFOLD_CPU_ROUNDS how often (default 2).
func TestDeliveryCPU(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_CPU_DSN")
	pm, _ := strconv.Atoi(os.Getenv("EVENTFOLD_CPU_PGPID"))
	if dsn == "" || pm == 0 {
		t.Skip("EVENTFOLD_CPU_DSN or EVENTFOLD_CPU_PGPID not set")
	}
	modes := []string{"notify", "poll"}
	if v := os.Getenv("EVENTFOLD_CPU_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_CPU_ROUNDS")); err == nil {
		rounds = v
	}
	ctx := context.Background()
	writers := latencyWorkers + 4
	fx, err := prepare(ctx, dsn, 2)
	require.NoError(t, err)
	defer fx.drv.Close()
	wpool, err := pgxpool.New(ctx, withPoolSize(dsn, writers+1))
	require.NoError(t, err)
	defer wpool.Close()
	rpool, err := pgxpool.New(ctx, withPoolSize(dsn, 3))
	require.NoError(t, err)
	defer rpool.Close()
	require.NoError(t, warmPgx(ctx, wpool, writers+1))
	require.NoError(t, warmPgx(ctx, rpool, 3))
	s := sides[pgx.Tx]{
		writer: eventfold.New[pgx.Tx](pgxdriver.New(wpool), nil),
		reader: eventfold.New[pgx.Tx](pgxdriver.New(rpool), nil),
		exec: func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		},
	}
	for range rounds {
		for _, m := range modes {
			cfg := DeliveryConfig{DSN: dsn}.withDefaults()
			mode := m
			if ms, ok := strings.CutPrefix(m, "notify-min"); ok {
				v, err := strconv.Atoi(ms)
				require.NoError(t, err)
				cfg.NotifyMinInterval, mode = time.Duration(v)*time.Millisecond, "notify"
			}
			h := harness{cfg: cfg, dialect: eventfold.Postgres, sqls: fx.sqls, progress: os.Stderr,
				logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			c0, s0, load := processCPU(), clusterCPU(t, pm), loadavg()
			r, err := measureLatency(ctx, h, s, mode)
			require.NoError(t, err)
			time.Sleep(200 * time.Millisecond) // let the LISTEN backend exit
			c1, s1 := processCPU(), clusterCPU(t, pm)
			n := float64(r.Committed)
			t.Logf("%-13s client %5.0f µs/cmd  server %5.0f µs/cmd  notifies %4d  %4.0f cmd/s  commit→handler p50 %6.2f p99 %6.2f max %6.2f ms  due→handler p99 %7.2f ms  late %d (queued %d)  load %s",
				m, float64((c1-c0).Microseconds())/n, float64((s1-s0).Microseconds())/n, r.Notifications, r.CommandsPerSecond,
				r.P50ms, r.P99ms, r.MaxMS, r.DueP99ms, r.Late, r.Queued, load)
		}
	}
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
