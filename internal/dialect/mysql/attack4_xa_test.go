package mysql_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAttack4AppendInsideAPreparedXA: a client appends inside an XA
// transaction (XA START, an append, XA END, XA PREPARE) and disconnects;
// a transaction manager commits the branch later from another session.
// MariaDB 10.6+ releases a transaction's share locks at XA PREPARE
// (MDEV-26682), the gate's among them, so a prepared branch holding a
// position no longer held the gate: readers took it at once, proved every
// position up to the highest committed one settled and passed the prepared
// position (found on merge-trial ae16301, MariaDB 10.11.19: while 4 was
// prepared and 5..7 committed, every pool's Head said 7 and the floor was
// raised to 7; XA COMMIT then committed 4 below a Head given out). Since
// sql/mysql/00020 every append procedure refuses to run inside an XA
// transaction (31005, ErrInvalidInput) before it writes anything, so no
// prepared branch can hold a position: the library's one-event and batch
// appends and eventfold_append_events are refused, the branch prepares and
// commits without events, and readers see 1..7 in order throughout. Before
// 00020 the first append inside XA succeeded and Head said 7 while 4 was
// prepared (the failure above, seen on this tree).
func TestAttack4AppendInsideAPreparedXA(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	name := dbName(t, db)
	ops := mysqlops.New(db)
	for i := int64(1); i <= 3; i++ {
		ev, err := ops.Append(ctx, "xa-before", eventfold.Any, []eventfold.EventData{newEvent("Before")})
		require.NoError(t, err)
		require.Equal(t, i, ev[0].GlobalPosition)
	}
	h, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), h)

	cfg := serverConfig(t)
	cfg.DBName = name
	xa := openDB(t, cfg)
	conn, err := xa.Conn(ctx)
	require.NoError(t, err)
	xid := "'eventfold-attack4-" + name + "'"
	_, err = conn.ExecContext(ctx, "XA START "+xid)
	require.NoError(t, err)
	// Should the test stop before the branch is prepared: end the session
	// (it rolls an active branch back), or the scratch database's DROP
	// would wait for it.
	ended := false
	t.Cleanup(func() {
		if !ended {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			_ = conn.Close()
		}
	})
	// The branch does some work of its own (a read-only branch is ended at
	// XA PREPARE): here a row in one of eventfold's tables.
	marker := uuid.NewString()
	_, err = conn.ExecContext(ctx, "INSERT INTO eventfold_commit_markers (marker_id, recorded_at) VALUES (?, UTC_TIMESTAMP(6))", marker)
	require.NoError(t, err)
	refused := func(what string, err error) {
		t.Helper()
		require.Error(t, err, "%s inside XA", what)
		assert.ErrorIs(t, err, eventfold.ErrInvalidInput, "%s: %v", what, err)
		var me *mysql.MySQLError
		if assert.ErrorAs(t, err, &me, what) {
			assert.Equal(t, uint16(31005), me.Number, what)
			assert.Contains(t, me.Message, "XA transaction", what)
		}
	}
	xaOps := mysqlops.New(conn)
	_, err = xaOps.Append(ctx, "xa-held", eventfold.NoStream, []eventfold.EventData{newEvent("Held")})
	refused("eventfold_append_one", err)
	_, err = xaOps.Append(ctx, "xa-held", eventfold.NoStream, []eventfold.EventData{newEvent("Held"), newEvent("Held")})
	refused("eventfold_append_batch (one stream)", err)
	_, err = xaOps.AppendMany(ctx, []contract.StreamAppend{
		{StreamID: "xa-held", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("Held")}},
		{StreamID: "xa-held-2", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("Held")}},
	})
	var me *contract.AppendManyError
	if assert.ErrorAs(t, err, &me) {
		refused("eventfold_append_batch (two streams)", me.Err)
	}
	_, err = conn.ExecContext(ctx, `CALL eventfold_append_events('xa-held', -1, ?)`,
		fmt.Sprintf(`[{"id":%q,"type":"Held","data":{}}]`, uuid.NewString()))
	var dba *mysql.MySQLError
	require.ErrorAs(t, err, &dba, "CALL eventfold_append_events inside XA")
	assert.Equal(t, uint16(31005), dba.Number)
	var inBranch int64
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events WHERE stream_id LIKE 'xa-held%'`).Scan(&inBranch))
	require.Zero(t, inBranch, "nothing written inside the branch")

	_, err = conn.ExecContext(ctx, "XA END "+xid)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "XA PREPARE "+xid)
	require.NoError(t, err)
	// The client goes away: the session is closed, not returned to a pool.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
	_ = xa.Close()
	ended = true
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "XA ROLLBACK "+xid) })

	for i := int64(4); i <= 7; i++ {
		ev, err := ops.Append(ctx, "xa-after", eventfold.Any, []eventfold.EventData{newEvent("After")})
		require.NoError(t, err, "append beside the prepared branch")
		require.Equal(t, i, ev[0].GlobalPosition, "no position was taken inside the branch")
	}
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(7), h)
	fresh, err := secondPool(t, &freshDB{name: name}).Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(7), fresh)
	evs, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, positionsOf(evs))

	_, err = db.ExecContext(ctx, "XA COMMIT "+xid)
	require.NoError(t, err)
	var committed int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM eventfold_commit_markers WHERE marker_id = ?", marker).Scan(&committed))
	require.Equal(t, 1, committed, "the branch's own work committed")
	evs, err = ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, positionsOf(evs), "XA COMMIT adds no event")
	h, err = secondPool(t, &freshDB{name: name}).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(7), h)
}
