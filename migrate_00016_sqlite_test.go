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

// TestMigration00016UpgradeSQLite (SQLite): from schema 00015 with data
// (events of several streams, a stream whose events were all archived,
// the newest events deleted so that AUTOINCREMENT's counter is above every
// stored position, a subscription checkpoint), migrate up to 00016, which
// rebuilds eventfold_events without AUTOINCREMENT: every event, version
// and checkpoint reads the same, appends continue above the old counter
// (no position handed out twice), deleting the newest events keeps their
// positions from being handed out again, duplicate event ids are still
// refused. Down puts AUTOINCREMENT back with its counter at the floor; up
// again works.
func TestMigration00016UpgradeSQLite(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, eventfold.SQLite))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	db := drv.DB()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(eventfold.SQLite, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 15)
	require.NoError(t, err)
	v, err := p.GetDBVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(15), v)

	data := eventfold.EventData{Type: "T", Data: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{"m":"x"}`)}
	// The append before 00016 (its recipe: no position given, AUTOINCREMENT
	// hands it out), n events to a new stream; returns the last position.
	id := 0
	oldAppend := func(stream string, n int) (last int64) {
		for i := range n {
			id++
			require.NoError(t, db.QueryRowContext(ctx, `INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data, metadata)
				VALUES (?, ?, printf('00000000-0000-4000-8000-%012d', ?), 'T', '{"n":1}', '{"m":"x"}') RETURNING global_position`,
				stream, i+1, id).Scan(&last))
		}
		return last
	}
	oldAppend("a", 2)        // 1, 2
	oldAppend("archived", 3) // 3, 4, 5
	oldAppend("b", 1)        // 6
	require.Equal(t, int64(8), oldAppend("c", 2))
	// The stream "archived" is moved out entirely; the newest events
	// (stream c) are deleted too: the counter (8) is then above every
	// stored position (6).
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events WHERE stream_id IN ('archived', 'c')`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `INSERT INTO eventfold_checkpoints (name, position) VALUES ('projector', 6)`)
	require.NoError(t, err)
	before, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Len(t, before, 3)

	require.NoError(t, store.Migrate(ctx))
	v, err = store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, int64(16))
	var autoinc int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'eventfold_events' AND sql LIKE '%AUTOINCREMENT%'`).Scan(&autoinc))
	require.Zero(t, autoinc, "00016 rebuilds the table without AUTOINCREMENT")
	var seq int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'eventfold_events'`).Scan(&seq))
	require.Equal(t, int64(8), seq, "the counter is the floor")
	var triggers int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'eventfold_events'`).Scan(&triggers))
	require.Equal(t, 3, triggers, "the stream version trigger re-created, the two floor triggers")

	after, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Equal(t, before, after, "every event as it was")
	var cp int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT position FROM eventfold_checkpoints WHERE name = 'projector'`).Scan(&cp))
	require.Equal(t, int64(6), cp)
	version := func(stream string) int64 {
		v, err := store.StreamVersion(ctx, stream)
		require.NoError(t, err)
		return v
	}
	require.Equal(t, int64(2), version("a"))
	require.Equal(t, int64(3), version("archived"))
	require.Equal(t, int64(2), version("c"))

	// Appends go on above the old counter, with their versions.
	evs, err := store.Append(ctx, "archived", eventfold.Exact(3), data)
	require.NoError(t, err)
	require.Equal(t, int64(9), evs[0].GlobalPosition, "position 7 and 8 were handed out before")
	require.Equal(t, int64(4), evs[0].StreamVersion)
	evs, err = store.Append(ctx, "d", eventfold.Any, data, data, data) // 10, 11, 12
	require.NoError(t, err)
	require.Equal(t, []int64{10, 11, 12}, []int64{evs[0].GlobalPosition, evs[1].GlobalPosition, evs[2].GlobalPosition})
	_, err = store.Append(ctx, "a", eventfold.Exact(1), data)
	require.ErrorIs(t, err, eventfold.ErrWrongExpectedVersion)
	dup := data
	dup.ID = evs[0].ID
	_, err = store.Append(ctx, "e", eventfold.Any, dup)
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)

	// The newest events deleted (archived) after the migration: their
	// positions are not handed out again.
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events WHERE global_position >= 11`)
	require.NoError(t, err)
	evs, err = store.Append(ctx, "e", eventfold.Any, data)
	require.NoError(t, err)
	require.Equal(t, int64(13), evs[0].GlobalPosition)
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events`)
	require.NoError(t, err)
	evs, err = store.Append(ctx, "e", eventfold.Any, data)
	require.NoError(t, err)
	require.Equal(t, int64(14), evs[0].GlobalPosition)
	require.Equal(t, int64(2), evs[0].StreamVersion, "the version trigger still keeps the version")
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events WHERE global_position = 14`)
	require.NoError(t, err)

	// Down: AUTOINCREMENT again, its counter at the floor (14, no event
	// stored): the next position the code before 00016 gets is 15.
	_, err = store.MigrateDownTo(ctx, 15, false)
	require.NoError(t, err)
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'eventfold_events' AND sql LIKE '%AUTOINCREMENT%'`).Scan(&autoinc))
	require.Equal(t, 1, autoinc)
	require.NoError(t, db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'eventfold_events'`).Scan(&seq))
	require.Equal(t, int64(14), seq)
	var pos int64
	require.NoError(t, db.QueryRowContext(ctx, `INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data)
		VALUES ('e', 3, '0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10', 'T', '{}') RETURNING global_position`).Scan(&pos))
	require.Equal(t, int64(15), pos)

	// Up again: the floor starts at the counter.
	require.NoError(t, store.Migrate(ctx))
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events`)
	require.NoError(t, err)
	evs, err = store.Append(ctx, "e", eventfold.Exact(3), data, data)
	require.NoError(t, err)
	require.Equal(t, int64(16), evs[0].GlobalPosition)
	require.Equal(t, int64(17), evs[1].GlobalPosition)
	require.Equal(t, int64(5), evs[1].StreamVersion)
}
