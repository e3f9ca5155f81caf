package bench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqldialect "github.com/eventfold/eventfold/internal/dialect/mysql"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
)

// readCounter is an eventfold.Log that counts the ReadAll calls that
// reach it (the shared reader's reads and the followers' own) and the
// rows they return.
type readCounter struct {
	eventfold.Log
	reads, empty, rows atomic.Int64
}

func (c *readCounter) ReadAll(ctx context.Context, opt eventfold.ReadAllOptions) ([]eventfold.Event, error) {
	evs, err := c.Log.ReadAll(ctx, opt)
	if err == nil {
		c.reads.Add(1)
		c.rows.Add(int64(len(evs)))
		if len(evs) == 0 {
			c.empty.Add(1)
		}
	}
	return evs, err
}

// serverThreads samples, every 20 ms, the CPU time of the database's
// connections (PostgreSQL backends, MariaDB connection threads), keyed by
// pid or thread id with the role its pool gives it, and keeps the last
// sample of each, so that a connection that ends (the LISTEN backend)
// keeps the time it had.
type serverThreads struct {
	mu   sync.Mutex
	last map[int]roleCPU
}

type roleCPU struct {
	role string
	cpu  time.Duration
}

// snapshot returns the CPU time per role so far.
func (s *serverThreads) snapshot() map[string]time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]time.Duration{}
	for _, rc := range s.last {
		out[rc.role] += rc.cpu
	}
	return out
}

// threadCPU is utime + stime of /proc/<path>/stat.
func threadCPU(path string) (time.Duration, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, true
}

// sample runs until ctx ends. list returns the connections now: key,
// /proc path of its stat file, role.
func (s *serverThreads) sample(ctx context.Context, list func() ([][3]string, error)) {
	for ctx.Err() == nil {
		conns, err := list()
		if err == nil {
			s.mu.Lock()
			for _, c := range conns {
				k, _ := strconv.Atoi(c[0])
				if t, ok := threadCPU(c[1]); ok {
					s.last[k] = roleCPU{role: c[2], cpu: t}
				}
			}
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lockWaitSamples counts the row lock waits seen in samples, by who
// waits for whom.
type lockWaitSamples struct {
	mu sync.Mutex
	m  map[string]int
}

func (l *lockWaitSamples) Add(k string, n int) { l.mu.Lock(); l.m[k] += n; l.mu.Unlock() }
func (l *lockWaitSamples) reset()              { l.mu.Lock(); clear(l.m); l.mu.Unlock() }
func (l *lockWaitSamples) get() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.m {
		out[k] = v
	}
	return out
}

// rowLockWaits reads MariaDB's server-wide Innodb_row_lock_waits and
// Innodb_row_lock_time (ms); zeros elsewhere.
func rowLockWaits(ctx context.Context, db *sql.DB, d eventfold.Dialect) (waits, ms int64) {
	if d != eventfold.MySQL {
		return 0, 0
	}
	rows, err := db.QueryContext(ctx, `SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time')`)
	if err != nil {
		return 0, 0
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v int64
		if rows.Scan(&k, &v) != nil {
			return 0, 0
		}
		if k == "Innodb_row_lock_waits" {
			waits = v
		} else {
			ms = v
		}
	}
	return waits, ms
}

func withParam(dsn, k, v string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return dsn
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestSubscribersCPU attributes the cost of the subscribers workload
// (esctl bench --workload subscribers: 16 writers, 4 live Tails): it runs
// the throughput mode without and with the subscribers in turn (ABAB…),
// on the database EVENTFOLD_SUBS_DSN (a scratch database: PostgreSQL or
// MySQL/MariaDB on this machine, since the server's threads are read from
// /proc), and prints per mode and per second of it: the reads that reached
// the database and their rows, the followers' batches, the wake-ups, the
// client's CPU (this process; its CPU profile, with the goroutines labelled
// role=subscriber/listen/notifier, is written to EVENTFOLD_SUBS_PROFILES
// when set), and the server's CPU by connection role (writers, readers,
// the LISTEN connection, the Notifier's). EVENTFOLD_SUBS_ROUNDS rounds
// (default 2), EVENTFOLD_SUBS_SECONDS per mode (default 5).
func TestSubscribersCPU(t *testing.T) {
	dsn := os.Getenv("EVENTFOLD_SUBS_DSN")
	if dsn == "" {
		t.Skip("EVENTFOLD_SUBS_DSN not set")
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_SUBS_ROUNDS")); err == nil {
		rounds = v
	}
	secs := 5
	if v, err := strconv.Atoi(os.Getenv("EVENTFOLD_SUBS_SECONDS")); err == nil {
		secs = v
	}
	profDir := os.Getenv("EVENTFOLD_SUBS_PROFILES")
	ctx := context.Background()
	d, err := sqldriver.DialectOf(dsn)
	require.NoError(t, err)
	cfg := DeliveryConfig{DSN: dsn, Duration: time.Duration(secs) * time.Second}.withDefaults()
	writers := max(cfg.Concurrency, latencyWorkers) + 4
	readers := cfg.Subscribers + 2
	fx, err := prepare(ctx, dsn, writers)
	require.NoError(t, err)
	defer fx.drv.Close()
	probeDB := fx.drv.DB()
	threads := &serverThreads{last: map[int]roleCPU{}}
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	defer func() { stopSampling(); sampling.Wait() }()

	probe := &subscribersProbe{}
	waitSamples := &lockWaitSamples{m: map[string]int{}}
	h := harness{cfg: cfg, dialect: d, sqls: fx.sqls, progress: os.Stderr, probe: probe,
		logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var run func(subs int) (*ThroughputResult, error)
	var counter *readCounter
	switch d {
	case eventfold.Postgres:
		app := func(role string) string { return withParam(dsn, "application_name", "w_subs_"+role) }
		wpool, err := pgxpool.New(ctx, withPoolSize(app("writer"), writers+1))
		require.NoError(t, err)
		defer wpool.Close()
		rpool, err := pgxpool.New(ctx, withPoolSize(app("reader"), readers))
		require.NoError(t, err)
		defer rpool.Close()
		npool, err := pgxpool.New(ctx, withPoolSize(app("notifier"), 2))
		require.NoError(t, err)
		defer npool.Close()
		require.NoError(t, warmPgx(ctx, wpool, writers+1))
		require.NoError(t, warmPgx(ctx, rpool, readers))
		require.NoError(t, warmPgx(ctx, npool, 2))
		h.cfg.DSN = app("listen") // the LISTEN connection's
		exec := func(ctx context.Context, tx pgx.Tx, q string, args ...any) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		}
		s := sides[pgx.Tx]{
			writer: eventfold.New[pgx.Tx](pgxdriver.New(wpool), nil),
			reader: eventfold.New[pgx.Tx](pgxdriver.New(rpool), nil),
			notify: eventfold.New[pgx.Tx](pgxdriver.New(npool), nil),
			exec:   exec,
		}
		counter = &readCounter{Log: s.reader}
		s.log = counter
		require.NoError(t, warmUp(ctx, h, s, "notify"))
		run = func(n int) (*ThroughputResult, error) { return measureThroughput(ctx, h, s, n) }
		sampling.Go(func() {
			threads.sample(sctx, func() ([][3]string, error) {
				rows, err := probeDB.QueryContext(sctx, `select pid, application_name from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				var out [][3]string
				for rows.Next() {
					var pid int
					var name string
					if err := rows.Scan(&pid, &name); err != nil {
						return nil, err
					}
					role := strings.TrimPrefix(name, "w_subs_")
					if role == name {
						role = "other"
					}
					out = append(out, [3]string{strconv.Itoa(pid), "/proc/" + strconv.Itoa(pid) + "/stat", role})
				}
				return out, rows.Err()
			})
		})
	case eventfold.MySQL:
		rdrv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer rdrv.Close()
		rdrv.DB().SetMaxOpenConns(readers)
		rdrv.DB().SetMaxIdleConns(readers)
		require.NoError(t, warmSQL(ctx, fx.drv.DB(), writers))
		require.NoError(t, warmSQL(ctx, rdrv.DB(), readers))
		// The readers' connection ids: every connection of their pool,
		// held at once.
		readerIDs := map[int64]bool{}
		var held []*sql.Conn
		for range readers {
			c, err := rdrv.DB().Conn(ctx)
			require.NoError(t, err)
			var id int64
			require.NoError(t, c.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&id))
			readerIDs[id] = true
			held = append(held, c)
		}
		for _, c := range held {
			_ = c.Close()
		}
		var probeID int64
		pc, err := probeDB.Conn(ctx)
		require.NoError(t, err)
		defer pc.Close()
		require.NoError(t, pc.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&probeID))
		var mysqld int
		{
			b, err := os.ReadFile("/run/mysqld/mysqld.pid")
			if err == nil {
				mysqld, _ = strconv.Atoi(strings.TrimSpace(string(b)))
			}
			if mysqld == 0 {
				out, _ := filepath.Glob("/proc/[0-9]*/comm")
				for _, f := range out {
					if b, _ := os.ReadFile(f); strings.TrimSpace(string(b)) == "mariadbd" {
						mysqld, _ = strconv.Atoi(strings.Split(f, "/")[2])
					}
				}
			}
		}
		require.NotZero(t, mysqld, "no mariadbd process on this machine")
		s := sides[*sql.Tx]{
			writer: fx.store,
			reader: eventfold.New(rdrv, nil),
			exec: func(ctx context.Context, tx *sql.Tx, q string, args ...any) error {
				_, err := tx.ExecContext(ctx, q, args...)
				return err
			},
		}
		counter = &readCounter{Log: s.reader}
		s.log = counter
		require.NoError(t, warmUp(ctx, h, s, "poll"))
		run = func(n int) (*ThroughputResult, error) { return measureThroughput(ctx, h, s, n) }
		sampling.Go(func() {
			threads.sample(sctx, func() ([][3]string, error) {
				rows, err := pc.QueryContext(sctx, `SELECT ID, TID FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()`)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				var out [][3]string
				for rows.Next() {
					var id, tid int64
					if err := rows.Scan(&id, &tid); err != nil {
						return nil, err
					}
					role := "writer"
					if readerIDs[id] {
						role = "reader"
					}
					out = append(out, [3]string{strconv.FormatInt(tid, 10), fmt.Sprintf("/proc/%d/task/%d/stat", mysqld, tid), role})
				}
				return out, rows.Err()
			})
		})
		_ = probeID
		wc, err := probeDB.Conn(ctx)
		require.NoError(t, err)
		defer wc.Close()
		// Who waits for a row lock (the readers' locking reads, or
		// writers?), sampled every 2 ms on a connection of its own.
		sampling.Go(func() {
			for sctx.Err() == nil {
				rows, err := wc.QueryContext(sctx, `SELECT r.trx_mysql_thread_id, b.trx_mysql_thread_id FROM information_schema.INNODB_LOCK_WAITS w
JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
JOIN information_schema.PROCESSLIST pr ON pr.ID = r.trx_mysql_thread_id
JOIN information_schema.PROCESSLIST pb ON pb.ID = b.trx_mysql_thread_id
WHERE pr.DB = DATABASE() OR pb.DB = DATABASE()`)
				if err == nil {
					for rows.Next() {
						var waiter, blocker int64
						if rows.Scan(&waiter, &blocker) == nil {
							role := func(id int64) string {
								if readerIDs[id] {
									return "reader"
								}
								return "writer"
							}
							waitSamples.Add(role(waiter)+" waits for "+role(blocker), 1)
						}
					}
					_ = rows.Close()
				}
				select {
				case <-sctx.Done():
				case <-time.After(2 * time.Millisecond):
				}
			}
		})
	default:
		t.Skipf("dialect %s: the server's threads are not read", d)
	}
	time.Sleep(100 * time.Millisecond) // a first sample of every connection
	// EVENTFOLD_SUBS_MODES lists the subscribed modes measured after the
	// one without subscribers in each round: notify, poll (every
	// PollInterval), notify-min<ms> (the Notifier's MinInterval).
	modes := []string{""}
	if v := os.Getenv("EVENTFOLD_SUBS_MODES"); v != "" {
		modes = strings.Split(v, ",")
	}
	for round := range rounds {
		for i, m := range append([]string{"none"}, modes...) {
			subs := cfg.Subscribers
			if i == 0 {
				subs = 0
			}
			probe.listen, probe.notifier = nil, nil
			probe.batches.Store(0)
			probe.mode, h.cfg.NotifyMinInterval = m, 0
			if ms, ok := strings.CutPrefix(m, "notify-min"); ok {
				v, err := strconv.Atoi(ms)
				require.NoError(t, err)
				probe.mode, h.cfg.NotifyMinInterval = "notify", time.Duration(v)*time.Millisecond
			}
			r0, e0, w0 := counter.reads.Load(), counter.empty.Load(), counter.rows.Load()
			g0, k0, to0 := mysqldialect.GapReads(), mysqldialect.GateTakes(), mysqldialect.GateTimeouts()
			var prof *os.File
			if profDir != "" {
				prof, err = os.Create(filepath.Join(profDir, fmt.Sprintf("%s-r%d-s%d%s.pprof", d, round, subs, strings.TrimPrefix("-"+m, "-none"))))
				require.NoError(t, err)
				require.NoError(t, pprof.StartCPUProfile(prof))
			}
			lw0, lt0 := rowLockWaits(ctx, probeDB, d)
			waitSamples.reset()
			srv0, c0, load, wall0 := threads.snapshot(), processCPU(), loadavg(), time.Now()
			res, err := run(subs)
			require.NoError(t, err)
			time.Sleep(60 * time.Millisecond) // the sampler's last look at the LISTEN backend
			srv1, c1, wall := threads.snapshot(), processCPU(), time.Since(wall0).Seconds()
			lw1, lt1 := rowLockWaits(ctx, probeDB, d)
			if prof != nil {
				pprof.StopCPUProfile()
				_ = prof.Close()
			}
			sec := res.Seconds
			cmds := float64(res.Commands)
			var b strings.Builder
			fmt.Fprintf(&b, "%s round %d, %d subscribers %s: %d commands in %.2f s (%.0f/s; %.2f s with set-up and delivery), load %s\n", d, round, subs, m, res.Commands, sec, cmds/sec, wall, load)
			fmt.Fprintf(&b, "  dispatch p50 %.2f ms, p99 %.2f ms\n", res.P50ms, res.P99ms)
			if d == eventfold.MySQL {
				fmt.Fprintf(&b, "  InnoDB row lock waits %d, %d ms (server-wide: other sessions' too); waits of this database's connections seen in samples every 2 ms: %v\n", lw1-lw0, lt1-lt0, waitSamples.get())
			}
			fmt.Fprintf(&b, "  client CPU %.0f µs/cmd (%.2f cores)\n", float64((c1-c0).Microseconds())/cmds, (c1-c0).Seconds()/wall)
			roles := []string{}
			for k := range srv1 {
				roles = append(roles, k)
			}
			sort.Strings(roles)
			var total time.Duration
			for _, k := range roles {
				dt := srv1[k] - srv0[k]
				total += dt
				fmt.Fprintf(&b, "  server %-8s %6.0f µs/cmd (%.2f cores)\n", k, float64(dt.Microseconds())/cmds, dt.Seconds()/wall)
			}
			fmt.Fprintf(&b, "  server total    %6.0f µs/cmd (%.2f cores)\n", float64(total.Microseconds())/cmds, total.Seconds()/wall)
			if subs > 0 {
				reads, empty, rows := counter.reads.Load()-r0, counter.empty.Load()-e0, counter.rows.Load()-w0
				fmt.Fprintf(&b, "  database reads %.1f/s (%d, %d empty), rows %.0f/s (%.1f per read with events), follower batches %.1f/s (%d in all, %d followers)\n",
					float64(reads)/sec, reads, empty, float64(rows)/sec, float64(rows)/float64(max(1, reads-empty)), float64(probe.batches.Load())/sec, probe.batches.Load(), subs)
				if probe.notifier != nil {
					fmt.Fprintf(&b, "  pg_notify sent %.1f/s, received on LISTEN %.1f/s\n", float64(probe.notifier.Sent())/sec, float64(probe.listen.Received())/sec)
				}
				if d == eventfold.MySQL {
					fmt.Fprintf(&b, "  gap reads %d, gate takes %d, gate timeouts %d\n", mysqldialect.GapReads()-g0, mysqldialect.GateTakes()-k0, mysqldialect.GateTimeouts()-to0)
				}
			}
			t.Log(b.String())
		}
	}
}
