package natsrelay_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

// BenchmarkCatchUp relays a backlog (NATSRELAY_BENCH_BACKLOG events,
// default 100,000, in transactions of 100 over 50 streams) into a
// file-backed JetStream stream and reports events/s per dialect, and the
// CPU the test process spent per event while relaying (µs, user+system:
// the relay, the database driver, and with NATSRELAY_BENCH_NATS=inprocess
// the NATS server too). The NATS server is the machine's
// (EVENTFOLD_NATS_URL, default nats://127.0.0.1:4222), or with
// NATSRELAY_BENCH_NATS=inprocess one in this process (file store in a
// temporary directory). NATSRELAY_BENCH_NATS_PID, the pid of an external
// server, adds its CPU per event (from /proc). NATSRELAY_BENCH_BATCH
// (default 2000) and NATSRELAY_BENCH_INFLIGHT (default
// natsrelay.DefaultInFlight; 1 waits for each batch's acks before reading
// the next) tune the relay. Run with -benchtime=1x:
//
//	go test -run XXX -bench CatchUp -benchtime=1x ./relay/natsrelay
func BenchmarkCatchUp(b *testing.B) {
	backlog := envInt("NATSRELAY_BENCH_BACKLOG", 100000)
	for _, d := range testdb.Dialects() {
		b.Run(string(d), func(b *testing.B) {
			store := testdb.SQLStore(b, d)
			appendN(b, store, backlog)
			if _, err := store.WaitHead(context.Background(), mustLast(b, store)); err != nil {
				b.Fatal(err)
			}
			nc := connect(b, benchURL(b))
			serverPID := envInt("NATSRELAY_BENCH_NATS_PID", 0)
			b.ResetTimer()
			var (
				total          time.Duration
				cpu, serverCPU time.Duration
			)
			for range b.N {
				b.StopTimer()
				stream, prefix := uniqueStream(b, nc)
				createStream(b, nc, stream, prefix, jetstream.FileStorage)
				b.StartTimer()
				t0, cpu0, scpu0 := time.Now(), processCPU(b), pidCPU(serverPID)
				_, stop := runRelay(b, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Name: "bench-" + stream,
					InFlight: envInt("NATSRELAY_BENCH_INFLIGHT", natsrelay.DefaultInFlight),
					Listener: listener.Options{BatchSize: envInt("NATSRELAY_BENCH_BATCH", 2000)}})
				waitStream(b, nc, stream, uint64(backlog), 10*time.Minute)
				total += time.Since(t0)
				cpu += processCPU(b) - cpu0
				serverCPU += pidCPU(serverPID) - scpu0
				b.StopTimer()
				if err := stop(); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(backlog * b.N)
			b.ReportMetric(n/total.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/event")
			if serverPID > 0 {
				b.ReportMetric(float64(serverCPU.Microseconds())/n, "nats-cpu-µs/event")
			}
		})
	}
}

// benchURL is the NATS server of a benchmark: an in-process one when
// NATSRELAY_BENCH_NATS=inprocess, else sharedURL's.
func benchURL(b *testing.B) string {
	if os.Getenv("NATSRELAY_BENCH_NATS") != "inprocess" {
		return sharedURL(b)
	}
	s := startServer(b, b.TempDir(), -1)
	b.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// processCPU is the CPU time (user+system) this process used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pidCPU is the CPU time (user+system) process pid used so far, read from
// /proc/pid/stat; 0 for pid 0 or when it cannot be read.
func pidCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces): state is the
	// first, utime the 12th and stime the 13th.
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func mustLast(b *testing.B, store *eventfold.Store[*sql.Tx]) int64 {
	p, err := store.LastPosition(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkLiveLatency commits NATSRELAY_BENCH_RATE commands/s (default
// 1,000; NATSRELAY_BENCH_WRITERS writers, default 4, one event each) on
// PostgreSQL for NATSRELAY_BENCH_SECONDS (default 5) while the relay
// follows, woken by NOTIFY (a Notifier after each commit, a
// pgxdriver.Listener on the relay's side; 1s polling behind), and reports
// the delay from the append's return (after COMMIT) to JetStream's ack of
// the event: p50, p99 and max in milliseconds, and the commands/s reached.
// It also traces the slowest 1%: for each, when the relay was last woken
// by a notification before it read the event, when it handed the event to
// the publish (read done), and when the ack came, so that the tail can be
// told apart: waiting for the wake-up, for the read (on PostgreSQL a
// transaction still open anywhere in the cluster holds the read horizon
// back), or for NATS. Use a private PostgreSQL cluster
// (EVENTFOLD_POSTGRES_DSN) for figures: on a shared one other sessions'
// open transactions hold the horizon back. NATSRELAY_BENCH_NATS=inprocess
// uses a NATS server in this process; NATSRELAY_BENCH_SIGNAL=inprocess
// wakes the relay in-process as well (the Notifier's Signal), to take
// NOTIFY's own delay out.
func BenchmarkLiveLatency(b *testing.B) {
	dsn := testdb.DSN(b, eventfold.Postgres)
	store := openStore(b, dsn)
	nc := connect(b, benchURL(b))
	rate := envInt("NATSRELAY_BENCH_RATE", 1000)
	secs := envInt("NATSRELAY_BENCH_SECONDS", 5)
	writers := envInt("NATSRELAY_BENCH_WRITERS", 4)
	// The writers, the Notifier and the relay share one database/sql pool:
	// keep a connection for each of them idle and open them before
	// measuring. With database/sql's default of 2 idle connections, most
	// appends and notifications opened a new connection (a new PostgreSQL
	// backend) and closed it again: on a loaded machine the Notifier's
	// pg_notify then left hundreds of milliseconds after the commit.
	db := store.Driver().DB()
	db.SetMaxIdleConns(writers + 4)
	warm := make([]*sql.Conn, 0, writers+4)
	for range writers + 4 {
		c, err := db.Conn(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		warm = append(warm, c)
	}
	for _, c := range warm {
		_ = c.Close()
	}
	for range b.N {
		stream, prefix := uniqueStream(b, nc)
		createStream(b, nc, stream, prefix, jetstream.FileStorage)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		sig := listener.NewSignal()
		wakes := &wakeLog{sig: sig}
		pl := &pgxdriver.Listener{ConnString: dsn, Signal: wakes}
		var nopts listener.NotifierOptions
		if os.Getenv("NATSRELAY_BENCH_SIGNAL") == "inprocess" {
			// The writers wake the relay in-process too (as when they
			// share the process): NOTIFY's own delay drops out.
			nopts.Signal = sig
		}
		notifier := listener.NewNotifier(store, &nopts)
		wg.Go(func() { _ = pl.Run(ctx) })
		wg.Go(func() { _ = notifier.Run(ctx) })
		for !pl.Connected() {
			time.Sleep(5 * time.Millisecond)
		}
		var (
			mu                       sync.Mutex
			committed, handed, acked = map[int64]time.Time{}, map[int64]time.Time{}, map[int64]time.Time{}
		)
		ackedFn := func(evs []eventfold.Event) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range evs {
				acked[ev.GlobalPosition] = now
			}
		}
		// The subject function runs as the relay builds the event's
		// message: right after the read that found it.
		subject := func(p string, ev eventfold.Event) (string, error) {
			now := time.Now()
			mu.Lock()
			handed[ev.GlobalPosition] = now
			mu.Unlock()
			return natsrelay.DefaultSubject(p, ev)
		}
		_, stop := runRelay(b, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Acked: ackedFn, Subject: subject,
			Listener: listener.Options{Wakeup: sig, PollInterval: time.Second, StartAt: listener.StartAtHead}})
		time.Sleep(300 * time.Millisecond)
		interval := time.Duration(writers) * time.Second / time.Duration(rate)
		t0 := time.Now()
		deadline := t0.Add(time.Duration(secs) * time.Second)
		var ww sync.WaitGroup
		for w := range writers {
			ww.Go(func() {
				t := time.NewTicker(interval)
				defer t.Stop()
				for i := 0; time.Now().Before(deadline); i++ {
					<-t.C
					out, err := store.Append(ctx, "live-"+string(rune('a'+w)), eventfold.Any, eventfold.EventData{Type: "Tick", Data: data(i)})
					if err != nil {
						b.Error(err)
						return
					}
					now := time.Now()
					mu.Lock()
					committed[out[0].GlobalPosition] = now
					mu.Unlock()
					notifier.NotifyEvents(out)
				}
			})
		}
		ww.Wait()
		elapsed := time.Since(t0)
		time.Sleep(time.Second)
		_ = stop()
		cancel()
		wg.Wait()
		mu.Lock()
		type delivery struct {
			pos                     int64
			lat                     time.Duration
			commit, wake, read, ack time.Time
		}
		var ds []delivery
		for pos, c := range committed {
			a, ok := acked[pos]
			if !ok {
				continue
			}
			ds = append(ds, delivery{pos: pos, lat: max(0, a.Sub(c)), commit: c, read: handed[pos], ack: a})
		}
		missing := len(committed) - len(ds)
		mu.Unlock()
		if len(ds) == 0 {
			b.Fatal("no latency measured")
		}
		slices.SortFunc(ds, func(x, y delivery) int { return int(x.lat - y.lat) })
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(ds[len(ds)/2].lat), "p50-ms")
		b.ReportMetric(ms(ds[len(ds)*99/100].lat), "p99-ms")
		b.ReportMetric(ms(ds[len(ds)-1].lat), "max-ms")
		b.ReportMetric(float64(len(committed))/elapsed.Seconds(), "commits/s")
		b.Logf("%d events committed, %d acked in time (not counted: %d), %d notifications received", len(committed), len(ds), missing, pl.Received())
		// The slowest 1%: where did each spend its time?
		slow := ds[len(ds)*99/100:]
		var toWake, toRead, toAck []time.Duration
		for i := range slow {
			d := &slow[i]
			d.wake = wakes.lastBefore(d.read)
			if d.wake.Before(d.commit) {
				d.wake = time.Time{} // read without a wake-up after the commit (woken earlier, or by a poll)
			}
			if !d.wake.IsZero() {
				toWake = append(toWake, d.wake.Sub(d.commit))
				toRead = append(toRead, d.read.Sub(d.wake))
			}
			toAck = append(toAck, d.ack.Sub(d.read))
		}
		med := func(v []time.Duration) float64 {
			if len(v) == 0 {
				return -1
			}
			slices.Sort(v)
			return ms(v[len(v)/2])
		}
		b.Logf("slowest %d (>= %.2f ms): median commit->NOTIFY received %.2f ms (%d of them had one), NOTIFY->read done %.2f ms, read done->ack %.2f ms",
			len(slow), ms(slow[0].lat), med(toWake), len(toWake), med(toRead), med(toAck))
		for _, d := range slow[max(0, len(slow)-5):] {
			wake := "none after the commit"
			if !d.wake.IsZero() {
				wake = fmt.Sprintf("+%.2f ms", ms(d.wake.Sub(d.commit)))
			}
			b.Logf("  position %d: %.2f ms = notification %s, read done +%.2f ms, acked +%.2f ms (after the commit)",
				d.pos, ms(d.lat), wake, ms(d.read.Sub(d.commit)), ms(d.ack.Sub(d.commit)))
		}
	}
}

// wakeLog is a pgxdriver.Listener's Signal that remembers when each
// notification arrived.
type wakeLog struct {
	sig *listener.Signal
	mu  sync.Mutex
	at  []time.Time
}

func (w *wakeLog) Broadcast() {
	now := time.Now()
	w.mu.Lock()
	w.at = append(w.at, now)
	w.mu.Unlock()
	w.sig.Broadcast()
}

// lastBefore returns the last wake-up at or before t (zero when none).
func (w *wakeLog) lastBefore(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	i, _ := slices.BinarySearchFunc(w.at, t, func(a, t time.Time) int { return a.Compare(t) })
	for i < len(w.at) && !w.at[i].After(t) {
		i++
	}
	if i == 0 {
		return time.Time{}
	}
	return w.at[i-1]
}
