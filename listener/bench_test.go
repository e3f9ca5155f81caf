package listener_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
)

// BenchmarkCommitToHandler measures the delay from the append's return
// (after COMMIT) to the handler seeing the event, on PostgreSQL through pgx:
// woken by NOTIFY via a pgxdriver.Listener (no in-process shortcut), and by polling
// alone (every 10ms). Reports p50/p99 in microseconds.
func BenchmarkCommitToHandler(b *testing.B) {
	for _, mode := range []string{"notify", "poll-10ms"} {
		b.Run(mode, func(b *testing.B) {
			store, dsn := pgxStoreB(b)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			opts := &listener.Options{PollInterval: 10 * time.Millisecond, Logger: quietLogger()}
			n := listener.NewNotifier(store, nil)
			if mode == "notify" {
				sig := listener.NewSignal()
				l := &pgxdriver.Listener{ConnString: dsn, Signal: sig, Logger: quietLogger()}
				wg.Go(func() { _ = l.Run(ctx) })
				wg.Go(func() { _ = n.Run(ctx) })
				for !l.Connected() {
					time.Sleep(5 * time.Millisecond)
				}
				opts = &listener.Options{PollInterval: time.Hour, Wakeup: sig, Logger: quietLogger()}
			}
			seen := make(chan int64, 16)
			wg.Go(func() {
				_ = listener.Tail(ctx, store, listener.StartAtHead, opts, func(_ context.Context, bt listener.Batch) error {
					for _, e := range bt.Events {
						seen <- e.GlobalPosition
					}
					return nil
				})
			})
			time.Sleep(50 * time.Millisecond)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := store.Append(ctx, "bench", eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)})
				if err != nil {
					b.Fatal(err)
				}
				t0 := time.Now()
				if mode == "notify" {
					n.NotifyEvents(out)
				}
				for p := range seen {
					if p == out[0].GlobalPosition {
						break
					}
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkWriteThroughput measures parallel single-event appends on
// PostgreSQL with no listener, and with 4 live tails woken by NOTIFY (sent by
// a coalescing Notifier outside the write transactions).
func BenchmarkWriteThroughput(b *testing.B) {
	for _, listeners := range []int{0, 4} {
		name := "no-listeners"
		if listeners > 0 {
			name = "4-listeners-notify"
		}
		b.Run(name, func(b *testing.B) {
			store, dsn := pgxStoreB(b)
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			n := listener.NewNotifier(store, nil)
			if listeners > 0 {
				sig := listener.NewSignal()
				l := &pgxdriver.Listener{ConnString: dsn, Signal: sig, Logger: quietLogger()}
				wg.Go(func() { _ = l.Run(ctx) })
				wg.Go(func() { _ = n.Run(ctx) })
				for range listeners {
					wg.Go(func() {
						_ = listener.Tail(ctx, store, listener.StartAtHead, &listener.Options{Wakeup: sig, PollInterval: time.Second, Logger: quietLogger()},
							func(context.Context, listener.Batch) error { return nil })
					})
				}
			}
			b.SetParallelism(8)
			start := time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					out, err := store.Append(ctx, "tp", eventfold.Any, eventfold.EventData{Type: "E", Data: data(i)})
					if err != nil {
						b.Error(err)
						return
					}
					n.NotifyEvents(out)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
			if listeners > 0 {
				b.ReportMetric(float64(n.Sent()), "notifies")
			}
		})
	}
}
