// Package backoff is the one retry delay and the one interruptible sleep
// every retrying loop of eventfold uses (the orchestrator's command
// retries, the listener's followers and leases, PostgreSQL LISTEN
// reconnects).
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Delay returns the wait before retry number attempt (1-based): minDelay
// doubled per attempt, capped at maxDelay, drawn uniformly from [d/2, d]
// ("equal jitter"), so that many callers hitting the same conflict or
// outage do not retry in lock-step while the wait still grows.
func Delay(attempt int, minDelay, maxDelay time.Duration) time.Duration {
	d := minDelay
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	if d > maxDelay {
		d = maxDelay
	}
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// Sleep waits d or until ctx ends; it reports whether the full delay
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
