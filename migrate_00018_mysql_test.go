package eventfold_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigration00018MySQLUpgrade: from 00017 with events, part of them
// archived the way the previous release did it (watermark moved, events
// deleted, last_position left alone) and a checkpoint, migrate up: the
// floor (last_position) covers every position used, appends go on above
// it through the library and the DBA procedure, and the procedures refuse
// a position at or below the floor; Down and Up again work.
func TestMigration00018MySQLUpgrade(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, eventfold.MySQL))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	db := drv.DB()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 17)
	require.NoError(t, err)

	var last int64
	for i := range 5 {
		evs, err := store.Append(ctx, fmt.Sprintf("s-%d", i%2), eventfold.Any, positionData)
		require.NoError(t, err)
		last = evs[0].GlobalPosition
	}
	// A rolled-back append leaves AUTO_INCREMENT above the last event.
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `CALL eventfold_append_events('rolled-back', -1, ?)`,
		fmt.Sprintf(`[{"id":%q,"type":"T","data":{}}]`, uuid.NewString()))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	// The previous release's archive of everything but the last event.
	_, err = db.ExecContext(ctx, `UPDATE eventfold_archive_watermark SET archived_before = ? WHERE id = 1`, last)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events WHERE global_position < ?`, last)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO eventfold_checkpoints (name, position, updated_at) VALUES ('p', ?, UTC_TIMESTAMP(6))`, last)
	require.NoError(t, err)
	floor := func() int64 {
		var v int64
		require.NoError(t, db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&v))
		return v
	}
	autoInc := func() int64 {
		var v int64
		require.NoError(t, db.QueryRowContext(ctx, `SELECT AUTO_INCREMENT FROM information_schema.TABLES
			WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'eventfold_events'`).Scan(&v))
		return v
	}
	ai := autoInc()
	require.Greater(t, ai, last+1, "the rolled-back append used a position")
	require.Less(t, floor(), last, "00015 stopped maintaining last_position")

	_, err = p.UpTo(ctx, 18)
	require.NoError(t, err)
	require.Equal(t, ai-1, floor(), "00018 raises the floor to every position used")

	evs, err := store.Append(ctx, "s-0", eventfold.Exact(3), positionData)
	require.NoError(t, err)
	require.GreaterOrEqual(t, evs[0].GlobalPosition, ai)
	require.Equal(t, int64(4), evs[0].StreamVersion)
	dba := func() error {
		_, err := db.ExecContext(ctx, `CALL eventfold_append_events('dba', -1, ?)`,
			fmt.Sprintf(`[{"id":%q,"type":"T","data":{}},{"id":%q,"type":"T","data":{}}]`, uuid.NewString(), uuid.NewString()))
		return err
	}
	require.NoError(t, dba())

	// Everything archived (by this release: the floor follows), then the
	// counter reset: all three procedures refuse.
	ops := store.Driver().Ops()
	w, err := ops.ArchivedBefore(ctx)
	require.NoError(t, err)
	head := autoInc() - 1
	ok, err := ops.SwapArchivedBefore(ctx, w, head+1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, head, floor())
	_, err = ops.DeleteEventRange(ctx, 0, head)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `ALTER TABLE eventfold_events AUTO_INCREMENT = 1`)
	require.NoError(t, err)
	require.Equal(t, int64(1), autoInc())
	err = dba()
	require.ErrorContains(t, err, "positions behind")
	// (AppendTx, eventfold_append_one: TestMySQLPositions*.)
	err = store.InTx(ctx, func(tx *sql.Tx) error {
		_, err := store.AppendManyTx(ctx, tx, []eventfold.StreamAppend{
			{StreamID: "m-1", Expected: eventfold.Any, Events: []eventfold.EventData{positionData}},
			{StreamID: "m-2", Expected: eventfold.Any, Events: []eventfold.EventData{positionData, positionData}},
		})
		return err
	})
	require.ErrorIs(t, err, eventfold.ErrPositionsBehind)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
	require.Zero(t, n, "refused appends wrote nothing")
	// AppendManyTx started the repair in the background.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pc, err := store.CheckPositions(ctx, false)
		require.NoError(t, err)
		if !pc.Moved {
			break
		}
		require.True(t, time.Now().Before(deadline), "not repaired: %+v", pc)
		time.Sleep(20 * time.Millisecond)
	}

	// Down restores 00017's procedures; Up again, and the repair.
	_, err = p.DownTo(ctx, 17)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 18)
	require.NoError(t, err)
	require.NoError(t, store.Migrate(ctx))
	evs, err = store.Append(ctx, "s-1", eventfold.Any, positionData)
	require.NoError(t, err)
	require.Greater(t, evs[0].GlobalPosition, head)
}
