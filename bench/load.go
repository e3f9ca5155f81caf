package bench

import (
	"context"
	"fmt"
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

// interleave runs a and b from concurrency workers for d, each worker
// alternating one command of each, and returns their mean latencies:
// both see the same moment's load.
func interleave(ctx context.Context, concurrency int, d time.Duration, a, b op) (meanA, meanB time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var sumA, sumB time.Duration
	var nA, nB int64
	var firstErr error
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			var sa, sb time.Duration
			var na, nb int64
			for seq := 0; ctx.Err() == nil; seq++ {
				fn := a
				if (seq+w)%2 == 1 {
					fn = b
				}
				start := time.Now()
				err := fn(ctx, w, seq)
				el := time.Since(start)
				if err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
					continue
				}
				if (seq+w)%2 == 1 {
					sb, nb = sb+el, nb+1
				} else {
					sa, na = sa+el, na+1
				}
			}
			mu.Lock()
			sumA, sumB, nA, nB = sumA+sa, sumB+sb, nA+na, nB+nb
			mu.Unlock()
		})
	}
	wg.Wait()
	if nA == 0 || nB == 0 {
		return 0, 0, fmt.Errorf("bench: interleaved: no command succeeded: %v", firstErr)
	}
	return sumA / time.Duration(nA), sumB / time.Duration(nB), nil
}
