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
// shared the checkpoint of "billing-X" and handled 0 of 45 events. The
// schema now compares names byte for byte (the dialect tests pair them
// below validation), and the identifier rules, the same on every dialect,
// refuse a name ending in white space; names that differ in another way
// (here: case) each have a checkpoint of their own.
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
	_, err := listener.New(store, "billing-X ", func(context.Context, eventfold.Event) error { return nil }, nil)
	require.ErrorIs(t, err, eventfold.ErrInvalidInput, `"billing-X " is refused, never taken for "billing-X"`)
	require.Equal(t, int64(45), run("billing-x"), `"billing-x" starts from its own checkpoint`)
}
