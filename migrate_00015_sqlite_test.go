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

// TestMigration00015UpgradeSQLite (SQLite): from the schema just below 00015,
// with streams and events written the way appends wrote them before
// (a streams row per stream), migrate up; versions read the same, appends
// go on from them without writing eventfold_streams, and deleting a
// stream's events (archiving, by whoever) keeps its version in
// eventfold_streams through the new trigger. Down drops the trigger and
// brings every streams row up to its stream's version, which code before
// 00015 reads; up again works.
func TestMigration00015UpgradeSQLite(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, eventfold.SQLite))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	db := drv.DB()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(eventfold.SQLite, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 14)
	require.NoError(t, err)
	v, err := p.GetDBVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(9), v, "the newest SQLite migration below 00015")

	// The previous append path, as the old code and 00001's recipe ran it.
	oldAppend := func(stream string, n int) {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		var ver int64
		require.NoError(t, tx.QueryRowContext(ctx, `INSERT INTO eventfold_streams (stream_id, version) VALUES (?, ?)
			ON CONFLICT (stream_id) DO UPDATE SET version = version + excluded.version RETURNING version`, stream, n).Scan(&ver))
		for i := range n {
			_, err := tx.ExecContext(ctx, `INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data)
				VALUES (?, ?, lower(hex(randomblob(4))) || '-0000-4000-8000-' || lower(hex(randomblob(6))), 'T', '{}')`,
				stream, ver-int64(n)+int64(i)+1)
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit())
	}
	oldAppend("old-1", 2)
	oldAppend("old-2", 3)
	oldAppend("old-1", 1)

	require.NoError(t, store.Migrate(ctx))
	v, err = store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, int64(15))

	version := func(stream string) int64 {
		v, err := store.StreamVersion(ctx, stream)
		require.NoError(t, err)
		return v
	}
	row := func(stream string) (v int64) {
		err := db.QueryRowContext(ctx, `SELECT coalesce((SELECT version FROM eventfold_streams WHERE stream_id = ?), -1)`, stream).Scan(&v)
		require.NoError(t, err)
		return v
	}
	require.Equal(t, int64(3), version("old-1"))
	require.Equal(t, int64(3), version("old-2"))
	data := eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)}
	evs, err := store.Append(ctx, "old-1", eventfold.Exact(3), data, data)
	require.NoError(t, err)
	require.Equal(t, int64(5), evs[1].StreamVersion)
	_, err = store.Append(ctx, "new", eventfold.NoStream, data)
	require.NoError(t, err)
	require.Equal(t, int64(5), version("old-1"))
	require.Equal(t, int64(3), row("old-1"), "appends since 00015 leave the streams row")
	require.Equal(t, int64(-1), row("new"))

	// A DBA (or an older esctl archive) deletes every event of old-1 and new.
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events WHERE stream_id IN ('old-1', 'new')`)
	require.NoError(t, err)
	require.Equal(t, int64(5), row("old-1"), "the trigger raised the row")
	require.Equal(t, int64(1), row("new"), "the trigger created the row")
	require.Equal(t, int64(5), version("old-1"))
	evs, err = store.Append(ctx, "old-1", eventfold.Any, data)
	require.NoError(t, err)
	require.Equal(t, int64(6), evs[0].StreamVersion)
	_, err = store.Append(ctx, "old-2", eventfold.Exact(3), data)
	require.NoError(t, err)
	_, err = store.Append(ctx, "after", eventfold.Any, data, data)
	require.NoError(t, err)

	// Down: no trigger, every streams row at its stream's version.
	_, err = store.MigrateDownTo(ctx, 9, false)
	require.NoError(t, err)
	var triggers int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'eventfold_events_keep_stream_version'`).Scan(&triggers))
	require.Zero(t, triggers)
	require.Equal(t, int64(6), row("old-1"))
	require.Equal(t, int64(4), row("old-2"))
	require.Equal(t, int64(1), row("new"))
	require.Equal(t, int64(2), row("after"))

	require.NoError(t, store.Migrate(ctx))
	require.Equal(t, int64(6), version("old-1"))
	evs, err = store.Append(ctx, "after", eventfold.Exact(2), data)
	require.NoError(t, err)
	require.Equal(t, int64(3), evs[0].StreamVersion)
}
