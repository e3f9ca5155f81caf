package listener_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
)

// TestSchemaNewerRefusesSubscriptionWrites: on a database a newer
// eventfold migrated (ErrSchemaNewer), the writes made through the store's
// Ops refuse as Append does: checkpoints (SetCheckpoint, DeleteCheckpoint,
// a subscription's lease and checkpoint), the orchestrator's pruning of
// command records and commit markers, the notify trigger; a subscription's
// Run returns the error instead of retrying a refusal that no retry cures.
// Reads go on: Checkpoints, Checkpoint, Lag, Tail. Before, every one of
// those writes went through.
func TestSchemaNewerRefusesSubscriptionWrites(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		ctx := context.Background()
		early := testdb.SQLStore(t, d)
		drv := early.Driver()
		evs, err := early.Append(ctx, "s", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{"n":1}`)})
		require.NoError(t, err)
		pos := evs[0].GlobalPosition
		require.NoError(t, listener.SetCheckpoint(ctx, early, "kept", pos))

		known, err := eventfold.LatestSchemaVersion(d)
		require.NoError(t, err)
		applied := "1"
		if d == eventfold.Postgres {
			applied = "true"
		}
		_, err = drv.DB().Exec(fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, known+1, applied))
		require.NoError(t, err)

		newer := func(t *testing.T, what string, err error) {
			t.Helper()
			require.ErrorIs(t, err, eventfold.ErrSchemaNewer, what)
			require.Contains(t, err.Error(), fmt.Sprintf("at version %d", known+1), what)
		}
		// Each check on a new Store: its first write is the one asking.
		fresh := func() *eventfold.Store[*sql.Tx] { return eventfold.New(drv, nil) }

		newer(t, "listener.SetCheckpoint", listener.SetCheckpoint(ctx, fresh(), "kept", 0))
		newer(t, "listener.DeleteCheckpoint", listener.DeleteCheckpoint(ctx, fresh(), "kept"))
		newer(t, "Ops().SetCheckpoint", fresh().Ops().SetCheckpoint(ctx, "kept", 0))
		_, err = fresh().Ops().AcquireLease(ctx, "kept", "me", time.Minute)
		newer(t, "Ops().AcquireLease", err)
		newer(t, "InOpsTx CreateCheckpoint", fresh().InOpsTx(ctx, func(ops eventfold.Ops) error { return ops.CreateCheckpoint(ctx, "other", 0) }))
		s := fresh()
		newer(t, "OpsTx AdvanceCheckpoint", s.InTx(ctx, func(tx *sql.Tx) error {
			_, err := s.OpsTx(tx).AdvanceCheckpoint(ctx, "kept", pos, pos+1)
			return err
		}))
		_, err = orchestrator.New(fresh(), nil).ForgetCommands(ctx, time.Now())
		newer(t, "ForgetCommands", err)
		if early.Ops().Capabilities().CommitMarkers {
			_, err = orchestrator.New(fresh(), nil).PruneCommitMarkers(ctx, time.Now())
			newer(t, "PruneCommitMarkers", err)
		}
		if early.Ops().Capabilities().Notify {
			newer(t, "EnableNotifyTrigger", listener.EnableNotifyTrigger(ctx, fresh()))
		}

		// A subscription stops with the error at once (it is no database
		// hiccup a retry would cure), for both kinds of handler.
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		sub, err := listener.New(fresh(), "new-sub", func(context.Context, eventfold.Event) error { return nil }, nil)
		require.NoError(t, err)
		newer(t, "Subscription.Run", sub.Run(rctx))
		txSub, err := listener.NewTx(fresh(), "new-tx-sub", func(context.Context, *sql.Tx, eventfold.Event) error { return nil }, nil)
		require.NoError(t, err)
		newer(t, "NewTx Subscription.Run", txSub.Run(rctx))
		require.NoError(t, rctx.Err(), "Run waited for its context")

		// Reads go on; nothing was written.
		reader := fresh()
		cps, err := listener.Checkpoints(ctx, reader)
		require.NoError(t, err)
		require.Len(t, cps, 1)
		require.Equal(t, "kept", cps[0].Name)
		require.Equal(t, pos, cps[0].Position)
		require.Empty(t, cps[0].Owner)
		got, found, err := listener.Checkpoint(ctx, reader, "kept")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, pos, got)
		_, err = listener.Lag(ctx, reader, "kept")
		require.NoError(t, err)
		_, found, err = reader.Ops().GetCheckpoint(ctx, "new-sub")
		require.NoError(t, err)
		require.False(t, found, "a refused subscription created its checkpoint")
	})
}
