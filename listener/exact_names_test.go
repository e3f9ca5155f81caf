package listener_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
)

// TestSubscriptionNamesDifferingByATrailingSpace: on MariaDB (PAD SPACE
// utf8mb4_bin before migration 00005) a new subscription "billing-X "
// shared the checkpoint of "billing-X" and handled 0 of 45 events. Each
// name has a checkpoint of its own.
func TestSubscriptionNamesDifferingByATrailingSpace(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.MySQL)
	ctx := context.Background()
	for i := range 45 {
		_, err := store.Append(ctx, fmt.Sprintf("acct-%d", i%3), eventfold.Any, eventfold.EventData{Type: "Deposited", Data: data(i)})
		require.NoError(t, err)
	}
	run := func(name string) int64 {
		var handled atomic.Int64
		sub, err := listener.New(store, name, func(context.Context, eventfold.Event) error {
			handled.Add(1)
			return nil
		}, &listener.Options{PollInterval: 20 * time.Millisecond, Logger: quietLogger()})
		require.NoError(t, err)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- sub.Run(rctx) }()
		waitFor(t, 30*time.Second, fmt.Sprintf("%q to reach position 45", name), func() bool {
			pos, _, _ := listener.Checkpoint(ctx, store, name)
			return pos == 45
		})
		cancel()
		require.NoError(t, <-done)
		return handled.Load()
	}
	require.Equal(t, int64(45), run("billing-X"))
	require.Equal(t, int64(45), run("billing-X "), `"billing-X " starts from its own checkpoint`)
}
