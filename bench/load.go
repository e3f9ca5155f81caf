package bench

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// op runs one command for worker w; seq counts the worker's commands.
type op func(ctx context.Context, w, seq int) error

// runLoad runs op from concurrency workers for d and returns each worker's
// successful latencies, the error count and the elapsed time. The first
// error is kept so a broken setup is reported, not averaged away.
func runLoad(ctx context.Context, concurrency int, d time.Duration, fn op) ([][]time.Duration, int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	lat := make([][]time.Duration, concurrency)
	var errs atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range concurrency {
		wg.Go(func() {
			l := make([]time.Duration, 0, 4096)
			for seq := 0; ctx.Err() == nil; seq++ {
				t0 := time.Now()
				err := fn(ctx, w, seq)
				if err != nil {
					if ctx.Err() != nil {
						break // cut off by the deadline: not the system's fault
					}
					errs.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		})
	}
	wg.Wait()
	return lat, errs.Load(), time.Since(start), firstErr
}
