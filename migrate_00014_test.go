package eventfold_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigration00014Upgrade (PostgreSQL): from the schema just below 00014
// with events in it, migrate up; the events stay readable and appendable,
// a lower-xid append after a later transaction's is now refused
// (ErrStreamOrder, also ErrTransient) while the DBA wrapper append_events
// keeps working; Down restores 00006's function text exactly.
func TestMigration00014Upgrade(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	db := drv.DB()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(eventfold.Postgres, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 13)
	require.NoError(t, err)

	fnDef := func() string {
		var def string
		require.NoError(t, db.QueryRowContext(ctx,
			`SELECT pg_get_functiondef('eventfold.append_events_returning_data(text, bigint, uuid[], text[], jsonb[], jsonb[])'::regprocedure)`).Scan(&def))
		return def
	}
	before := fnDef()
	require.NotContains(t, before, "EF003")

	data := eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)}
	for i := 0; i < 3; i++ {
		_, err := store.Append(ctx, "s-1", eventfold.Any, data)
		require.NoError(t, err)
	}
	require.NoError(t, store.Migrate(ctx))
	v, err := store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, int64(14))
	require.Contains(t, fnDef(), "EF003")

	evs, err := store.ReadStream(ctx, "s-1", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, evs, 3, "the events written before the upgrade")
	_, err = store.Append(ctx, "s-1", eventfold.Exact(3), data)
	require.NoError(t, err, "an existing stream, appended to after the upgrade")

	// A transaction that took its xid before a later one wrote to s-1.
	tx, err := drv.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `SELECT pg_current_xact_id()`)
	require.NoError(t, err)
	_, err = store.Append(ctx, "s-1", eventfold.Exact(4), data)
	require.NoError(t, err)
	_, err = store.AppendTx(ctx, tx, "s-1", eventfold.Exact(5), data)
	require.ErrorIs(t, err, eventfold.ErrStreamOrder)
	require.ErrorIs(t, err, eventfold.ErrTransient)
	require.NoError(t, drv.Rollback(ctx, tx))

	// The DBA wrapper: same result columns, same check (EF003 in a script).
	var pos, ver int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT global_position, stream_version
		FROM eventfold.append_events('s-1', 5, ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])`).Scan(&pos, &ver))
	require.Equal(t, int64(6), ver)
	tx, err = drv.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `SELECT pg_current_xact_id()`)
	require.NoError(t, err)
	_, err = store.Append(ctx, "s-1", eventfold.Exact(6), data)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `SELECT * FROM eventfold.append_events('s-1', -1, ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])`)
	require.ErrorContains(t, err, "EF003")
	require.NoError(t, drv.Rollback(ctx, tx))

	// Down to 13: 00006's function, byte for byte; and up again.
	_, err = store.MigrateDownTo(ctx, 13, false)
	require.NoError(t, err)
	require.Equal(t, before, fnDef())
	require.NoError(t, store.Migrate(ctx))
	require.Contains(t, fnDef(), "EF003")
	evs, err = store.ReadStream(ctx, "s-1", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, evs, 7)
	for i := 1; i < len(evs); i++ {
		require.Greater(t, evs[i].GlobalPosition, evs[i-1].GlobalPosition)
	}
}
