package eventfold_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigration00019MySQLUpgrade: from 00018 with events and a dead
// position in them, and no reader that ever took the gate (the floor is
// still 0): while an append runs long, a new process's Head stops below the
// dead position (lag). Migrate up: the floor is raised to the highest
// event, and a new process's Head during a long append passes the dead
// position, up to the long append's. Appends go on above the floor; Down
// keeps the floor, and Up again works.
func TestMigration00019MySQLUpgrade(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	open := func() *eventfold.Store[*sql.Tx] {
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		t.Cleanup(func() { drv.Close() })
		return eventfold.New(drv, nil)
	}
	store := open()
	db := store.Driver().DB()
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 18)
	require.NoError(t, err)

	appendOne := func(stream string) int64 {
		t.Helper()
		evs, err := store.Append(ctx, stream, eventfold.Any, positionData)
		require.NoError(t, err)
		return evs[0].GlobalPosition
	}
	call := func(db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, stream string) error {
		_, err := db.ExecContext(ctx, `CALL eventfold_append_events(?, -1, ?)`, stream,
			fmt.Sprintf(`[{"id":%q,"type":"T","data":{}}]`, uuid.NewString()))
		return err
	}
	for range 3 {
		appendOne("s-1")
	}
	dead, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, call(dead, "dead"))
	require.NoError(t, dead.Rollback()) // position 4 dead
	var last int64
	for range 4 {
		last = appendOne("s-2")
	}
	require.Equal(t, int64(8), last)
	floor := func() int64 {
		var v int64
		require.NoError(t, db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&v))
		return v
	}
	require.Zero(t, floor(), "00018 on an empty database, no reader took the gate")

	// longHead opens an append and leaves it running, appends one more
	// event after it, and returns what a new process's Head says meanwhile.
	longHead := func() int64 {
		t.Helper()
		long, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		require.NoError(t, err)
		defer func() { require.NoError(t, long.Commit()) }()
		require.NoError(t, call(long, "long"))
		appendOne("after-long")
		h, err := open().Head(ctx)
		require.NoError(t, err)
		return h
	}
	require.Equal(t, int64(3), longHead(), "at 00018: a new process's Head stops below the dead position 4")
	// 9 (long) and 10 committed.

	_, err = p.UpTo(ctx, 19)
	require.NoError(t, err)
	require.Equal(t, int64(10), floor(), "00019 raises the floor to the highest event")
	require.Equal(t, int64(10), longHead(), "a new process's Head passes the dead position, up to the long append's 11")
	require.Equal(t, int64(10), floor(), "not raised: the gate was busy")

	// Appends go on above the floor (library and DBA procedure).
	require.Equal(t, int64(13), appendOne("s-1"))
	require.NoError(t, call(db, "dba"))
	h, err := store.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(14), h)

	_, err = p.DownTo(ctx, 18)
	require.NoError(t, err)
	require.GreaterOrEqual(t, floor(), int64(10), "Down keeps the floor")
	require.Equal(t, int64(15), appendOne("s-2"))
	_, err = p.UpTo(ctx, 19)
	require.NoError(t, err)
	v, err := store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(19), v)
	require.Equal(t, int64(15), floor(), "Up again raises it to the highest event")
	evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{Limit: 100})
	require.NoError(t, err)
	var got []int64
	for _, e := range evs {
		got = append(got, e.GlobalPosition)
	}
	require.Equal(t, []int64{1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, got)
}
