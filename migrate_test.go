package eventfold_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigration00009Upgrade migrates to version 4, writes events, migrates
// up and checks that the store got an identity, kept its events, and that
// the library's MigrateDownTo refuses to drop them (issue 16, item 10).
func TestMigration00009Upgrade(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		t.Cleanup(func() { drv.Close() })
		store := eventfold.New(drv, nil)
		p, err := eventfold.NewMigrator(d, drv.DB())
		require.NoError(t, err)
		// 00008 is the schema just before 00009 (the versions are
		// numbered per feature; a dialect may skip one).
		_, err = p.UpTo(ctx, 8)
		require.NoError(t, err)
		id, err := store.Identity(ctx)
		require.NoError(t, err)
		require.Empty(t, id, "no identity before 00009")
		for i := 0; i < 3; i++ {
			_, err := store.Append(ctx, "s-1", eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
			require.NoError(t, err)
		}
		require.NoError(t, store.Migrate(ctx))
		id, err = store.Identity(ctx)
		require.NoError(t, err)
		require.Len(t, id, 36, "a UUID")
		v, err := store.StreamVersion(ctx, "s-1")
		require.NoError(t, err)
		require.Equal(t, int64(3), v)

		_, err = store.MigrateDownTo(ctx, 0, false)
		require.ErrorIs(t, err, eventfold.ErrWouldLoseData)
		var dl *eventfold.DataLossError
		require.True(t, errors.As(err, &dl))
		require.Equal(t, int64(3), dl.Events)
		require.Equal(t, id, dl.StoreID)
		require.Contains(t, err.Error(), "3 events in 1 streams")
		v, err = store.StreamVersion(ctx, "s-1")
		require.NoError(t, err)
		require.Equal(t, int64(3), v, "nothing dropped")

		// Down to 4 loses neither events nor a (zero) watermark.
		_, err = store.MigrateDownTo(ctx, 4, false)
		require.NoError(t, err)
		_, err = store.MigrateDownTo(ctx, 0, true)
		require.NoError(t, err)
		require.NoError(t, store.Migrate(ctx))
		id2, err := store.Identity(ctx)
		require.NoError(t, err)
		require.NotEqual(t, id, id2, "a new store, a new identity")
	})
}

// TestMigrateDownGuardsCommandsAndCheckpoints: rolling back 00002 drops
// the orchestrator's command records (idempotency), rolling back 00003
// the durable subscriptions' checkpoints (they would replay from their
// StartAt). With data in them the library's MigrateDown/MigrateDownTo
// refuse, say what would be lost and leave it in place; force does it.
func TestMigrateDownGuardsCommandsAndCheckpoints(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		ctx := context.Background()
		store := testdb.SQLStore(t, d)
		require.NoError(t, store.InOpsTx(ctx, func(ops eventfold.Ops) error {
			if _, err := ops.RecordCommand(ctx, "", "cmd-1", "Deposit", "", []byte(`[]`)); err != nil {
				return err
			}
			if err := ops.SetCheckpoint(ctx, "projector", 5); err != nil {
				return err
			}
			return ops.SetCheckpoint(ctx, "mailer", 7)
		}))

		var dl *eventfold.DataLossError
		_, err := store.MigrateDownTo(ctx, 2, false)
		require.ErrorIs(t, err, eventfold.ErrWouldLoseData)
		require.ErrorAs(t, err, &dl)
		require.EqualValues(t, 2, dl.Checkpoints)
		require.Zero(t, dl.Commands, "down to 2 keeps the command records")
		require.Contains(t, err.Error(), "2 subscription checkpoints (migration 00003")
		require.NotContains(t, err.Error(), "command records")

		_, err = store.MigrateDownTo(ctx, 1, false)
		require.ErrorAs(t, err, &dl)
		require.EqualValues(t, 1, dl.Commands)
		require.EqualValues(t, 2, dl.Checkpoints)
		require.Contains(t, err.Error(), "1 command records (migration 00002")

		v, err := store.SchemaVersion(ctx)
		require.NoError(t, err)
		pos, found, err := store.Ops().GetCheckpoint(ctx, "projector")
		require.NoError(t, err)
		require.True(t, found, "nothing dropped (schema version %d)", v)
		require.EqualValues(t, 5, pos)

		// One step at a time is guarded too.
		_, err = store.MigrateDownTo(ctx, 3, false)
		require.NoError(t, err, "nothing to lose above 00003")
		_, err = store.MigrateDown(ctx, false)
		require.ErrorIs(t, err, eventfold.ErrWouldLoseData)
		require.Contains(t, err.Error(), "2 subscription checkpoints")
		_, err = store.MigrateDown(ctx, true)
		require.NoError(t, err)
		_, err = store.MigrateDown(ctx, false)
		require.ErrorIs(t, err, eventfold.ErrWouldLoseData)
		require.Contains(t, err.Error(), "1 command records")
		_, err = store.MigrateDownTo(ctx, 0, true)
		require.NoError(t, err)
	})
}
