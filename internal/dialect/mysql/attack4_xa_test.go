package mysql_test

import (
	"context"
	"database/sql/driver"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAttack4AppendInsideAPreparedXA: a client appends inside an XA
// transaction (XA START, the append procedure, XA END, XA PREPARE) and
// disconnects; the prepared branch keeps its position and the gate's share
// lock until a transaction manager commits it (XA COMMIT from another
// session, here after the first pool and new pools asked Head). Neither a
// long-lived pool (which proves and raises the floor) nor a new one may
// pass the prepared position; after XA COMMIT it is read in order.
//
// Known bug (found on merge-trial ae16301, MariaDB 10.11.19): InnoDB releases
// a transaction's shared locks at XA PREPARE (MariaDB 10.6+, MDEV-26682), so
// the prepared branch no longer holds the gate in share mode: appends 5..7
// go on at once, the long-lived pool's gate take is granted, proves 7 and
// raises the floor to 7 (sql/mysql/00019): every pool's Head says 7 while
// 4 is still pending (ReadAll stops at 3: the branch keeps its exclusive
// lock on row 4), and XA COMMIT then commits 4 below a Head given out, for
// good: a subscription started at Head (or any reader that goes on from
// Head) never sees 4, and the floor makes every new process agree. Not
// fixed: the gate needs a lock that survives XA PREPARE (or appends refuse
// to run inside XA).
func TestAttack4AppendInsideAPreparedXA(t *testing.T) {
	if os.Getenv("EVENTFOLD_KNOWN_BUGS") != "1" {
		t.Skip("known bug: XA PREPARE drops the gate's share lock (EVENTFOLD_KNOWN_BUGS=1 runs it)")
	}
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
	ev, err := mysqlops.New(conn).Append(ctx, "xa-held", eventfold.NoStream, []eventfold.EventData{newEvent("Held")})
	require.NoError(t, err, "append inside XA")
	held := ev[0].GlobalPosition
	require.Equal(t, int64(4), held)
	_, err = conn.ExecContext(ctx, "XA END "+xid)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "XA PREPARE "+xid)
	require.NoError(t, err)
	// The client goes away: the session is closed, not returned to a pool.
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
	_ = xa.Close()
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), "XA ROLLBACK "+xid) })

	rows, err := db.QueryContext(ctx, "XA RECOVER")
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Close())
	require.NotZero(t, n, "the prepared branch survives the disconnect")
	for i := int64(5); i <= 7; i++ {
		ev, err := ops.Append(ctx, "xa-after", eventfold.Any, []eventfold.EventData{newEvent("After")})
		require.NoError(t, err, "append beside the prepared branch")
		require.Equal(t, i, ev[0].GlobalPosition)
	}
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	assert.Less(t, h, held, "the long-lived pool passed the prepared position")
	fresh, err := secondPool(t, &freshDB{name: name}).Head(ctx)
	require.NoError(t, err)
	assert.Less(t, fresh, held, "a new pool passed the prepared position")
	t.Logf("while %d was prepared: Head %d, a new pool's Head %d, floor %d", held, h, fresh, floorOf(t, db))
	evs, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	t.Logf("ReadAll while %d was prepared: %v", held, positionsOf(evs))
	for _, e := range evs {
		assert.Less(t, e.GlobalPosition, held, "ReadAll passed the prepared position")
	}

	_, err = db.ExecContext(ctx, "XA COMMIT "+xid)
	require.NoError(t, err)
	evs, err = ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7}, positionsOf(evs))
	h, err = secondPool(t, &freshDB{name: name}).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(7), h)
}
