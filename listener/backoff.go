package listener

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff returns the delay before retry number attempt (1-based):
// exponential from min, capped at max, with ±20% jitter so that many
// followers hitting the same outage do not retry in lock-step.
func backoff(attempt int, minDelay, maxDelay time.Duration) time.Duration {
	d := minDelay
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	if d > maxDelay {
		d = maxDelay
	}
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + jitter
}

// sleep waits for d or until ctx ends; it reports whether the full delay
// passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
