package backoff

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDelayBounds(t *testing.T) {
	for attempt := 1; attempt <= 12; attempt++ {
		want := min(10*time.Millisecond<<(attempt-1), time.Second)
		for range 200 {
			d := Delay(attempt, 10*time.Millisecond, time.Second)
			require.GreaterOrEqual(t, d, want/2, "attempt %d", attempt)
			require.LessOrEqual(t, d, want, "attempt %d", attempt)
		}
	}
	require.Zero(t, Delay(3, 0, 0))
}

func TestSleepStopsAtCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	require.False(t, Sleep(ctx, time.Hour))
	require.Less(t, time.Since(start), time.Second)
	require.True(t, Sleep(context.Background(), time.Millisecond))
}
