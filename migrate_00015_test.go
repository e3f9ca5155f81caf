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

// TestMigration00015Upgrade (PostgreSQL): from 00014 with events in
// several streams, one of them archived completely (its events deleted,
// its streams row kept, as the previous release left it), migrate up:
// appends go on with the right versions and positions above the old ones,
// through the library and the DBA functions; Down restores 00014's
// function text exactly and brings the stream rows up to date, so the
// old function appends with the right versions again.
func TestMigration00015Upgrade(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	db := drv.DB()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(eventfold.Postgres, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 14)
	require.NoError(t, err)

	fnDef := func() string {
		var def string
		require.NoError(t, db.QueryRowContext(ctx,
			`SELECT pg_get_functiondef('eventfold.append_events_returning_data(text, bigint, uuid[], text[], jsonb[], jsonb[])'::regprocedure)`).Scan(&def))
		return def
	}
	before := fnDef()
	require.Contains(t, before, "INSERT INTO eventfold.streams")

	// At 00014, through the old function (the DBA path, which the previous
	// release's library used too).
	dba := func(stream string, expected int64) (pos, ver int64, err error) {
		err = db.QueryRowContext(ctx, `SELECT global_position, stream_version
			FROM eventfold.append_events($1, $2, ARRAY[gen_random_uuid()], ARRAY['T'], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])`,
			stream, expected).Scan(&pos, &ver)
		return pos, ver, err
	}
	var last int64
	for i := 0; i < 3; i++ {
		last, _, err = dba("s-1", -1)
		require.NoError(t, err)
	}
	_, _, err = dba("s-2", -1)
	require.NoError(t, err)
	p2, _, err := dba("s-2", -1)
	require.NoError(t, err)
	if p2 > last {
		last = p2
	}
	// s-2 archived by the previous release: its events gone, its row kept.
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold.events WHERE stream_id = 's-2'`)
	require.NoError(t, err)

	require.NoError(t, store.Migrate(ctx))
	v, err := store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, v, int64(15))
	require.NotContains(t, fnDef(), "INSERT INTO eventfold.streams", "no streams upsert any more")

	data := eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)}
	evs, err := store.Append(ctx, "s-1", eventfold.Exact(3), data)
	require.NoError(t, err)
	require.Equal(t, int64(4), evs[0].StreamVersion)
	require.Greater(t, evs[0].GlobalPosition, last)
	ver, err := store.StreamVersion(ctx, "s-2")
	require.NoError(t, err)
	require.Equal(t, int64(2), ver, "the archived stream's version survives")
	_, err = store.Append(ctx, "s-2", eventfold.NoStream, data)
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, int64(2), wev.Actual)
	evs, err = store.Append(ctx, "s-2", eventfold.Exact(2), data)
	require.NoError(t, err)
	require.Equal(t, int64(3), evs[0].StreamVersion)

	// The DBA functions on 00015: same results, same errors.
	pos, ver, err := dba("s-1", 4)
	require.NoError(t, err)
	require.Equal(t, int64(5), ver)
	require.Greater(t, pos, evs[0].GlobalPosition)
	_, _, err = dba("s-1", 2)
	require.ErrorContains(t, err, `wrong expected version for stream "s-1": expected 2, actual 5`)
	require.ErrorContains(t, err, "EF001")
	_, ver, err = dba("s-2", -3)
	require.NoError(t, err)
	require.Equal(t, int64(4), ver)
	_, _, err = dba("s-3", -3)
	require.ErrorContains(t, err, "expected exists, actual 0")

	// Down to 14: the old function, byte for byte; the stream rows caught
	// up, so it appends after what 00015 appended.
	_, err = store.MigrateDownTo(ctx, 14, false)
	require.NoError(t, err)
	require.Equal(t, before, fnDef())
	_, ver, err = dba("s-1", 5)
	require.NoError(t, err)
	require.Equal(t, int64(6), ver)
	_, ver, err = dba("s-2", 4)
	require.NoError(t, err)
	require.Equal(t, int64(5), ver)

	require.NoError(t, store.Migrate(ctx))
	for stream, n := range map[string]int{"s-1": 6, "s-2": 3} { // s-2: versions 3-5 in the hot table
		evs, err := store.ReadStream(ctx, stream, eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Len(t, evs, n, stream)
		for i := 1; i < len(evs); i++ {
			require.Equal(t, evs[i-1].StreamVersion+1, evs[i].StreamVersion)
			require.Greater(t, evs[i].GlobalPosition, evs[i-1].GlobalPosition)
		}
	}
	evs, err = store.Append(ctx, "s-1", eventfold.Exact(6), data)
	require.NoError(t, err)
	require.Equal(t, int64(7), evs[0].StreamVersion)
}
