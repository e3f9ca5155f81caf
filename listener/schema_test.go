package listener_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestSubscriptionsWithoutSchema: on a database where eventfold's schema
// was never installed, the checkpoint functions fail with
// ErrSchemaNotInstalled and the message Append gives, and a running
// subscription (which retries database errors until the schema appears)
// reports that message, not the driver's "no such table".
func TestSubscriptionsWithoutSchema(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		store := eventfold.New(drv, nil)
		defer store.Close()
		_, appendErr := store.Append(ctx, "s-1", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
		require.ErrorIs(t, appendErr, eventfold.ErrSchemaNotInstalled)
		want := appendErr.Error()

		_, err = listener.Checkpoints(ctx, store)
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		require.Contains(t, err.Error(), want)
		_, _, err = listener.Checkpoint(ctx, store, "sub")
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		require.Contains(t, err.Error(), want)
		_, err = listener.Lag(ctx, store, "sub")
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		err = listener.SetCheckpoint(ctx, store, "sub", 1)
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)
		err = listener.DeleteCheckpoint(ctx, store, "sub")
		require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled)

		sub, err := listener.New(store, "sub", func(context.Context, eventfold.Event) error { return nil },
			&listener.Options{RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond})
		require.NoError(t, err)
		rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		require.NoError(t, sub.Run(rctx))
		st := sub.Stats()
		require.NotZero(t, st.Failures)
		require.Contains(t, st.LastError, want)
	})
}
