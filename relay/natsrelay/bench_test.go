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
// 1,000; four writers, one event each) on PostgreSQL for
// NATSRELAY_BENCH_SECONDS (default 5) while the relay follows, woken by
// NOTIFY (a Notifier after each commit, a PGListener on the relay's side),
// and reports the delay from the append's return (after COMMIT) to
// JetStream's ack of the event: p50 and p99 in milliseconds.
func BenchmarkLiveLatency(b *testing.B) {
	dsn := testdb.DSN(b, eventfold.Postgres)
	store := openStore(b, dsn)
	nc := connect(b, sharedURL(b))
	rate := envInt("NATSRELAY_BENCH_RATE", 1000)
	secs := envInt("NATSRELAY_BENCH_SECONDS", 5)
	for range b.N {
		stream, prefix := uniqueStream(b, nc)
		createStream(b, nc, stream, prefix, jetstream.FileStorage)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		sig := listener.NewSignal()
		pl := &pgxdriver.Listener{ConnString: dsn, Signal: sig}
		notifier := listener.NewNotifier(store, nil)
		wg.Go(func() { _ = pl.Run(ctx) })
		wg.Go(func() { _ = notifier.Run(ctx) })
		for !pl.Connected() {
			time.Sleep(5 * time.Millisecond)
		}
		var (
			mu      sync.Mutex
			commits = map[int64]time.Time{}
			lat     []time.Duration
		)
		acked := func(evs []eventfold.Event) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range evs {
				if t0, ok := commits[ev.GlobalPosition]; ok {
					lat = append(lat, now.Sub(t0))
					delete(commits, ev.GlobalPosition)
				}
			}
		}
		_, stop := runRelay(b, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Acked: acked,
			Listener: listener.Options{Wakeup: sig, PollInterval: time.Second, StartAt: listener.StartAtHead}})
		time.Sleep(300 * time.Millisecond)
		writers := envInt("NATSRELAY_BENCH_WRITERS", 4)
		interval := time.Duration(writers) * time.Second / time.Duration(rate)
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
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
					// The ack may already have come (the relay woke by
					// polling or another writer's NOTIFY): count it as 0.
					commits[out[0].GlobalPosition] = now
					mu.Unlock()
					notifier.NotifyEvents(out)
				}
			})
		}
		ww.Wait()
		time.Sleep(time.Second)
		_ = stop()
		cancel()
		wg.Wait()
		mu.Lock()
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatal("no latency measured")
		}
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(len(lat))/float64(secs), "acked/s")
		b.Logf("%d events, %d commits without a measured ack", len(lat), len(commits))
		mu.Unlock()
	}
}
