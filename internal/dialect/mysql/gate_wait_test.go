package mysql_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// gateWaitLog builds the attacker's log: 1 committed, 2 dead (rolled back),
// 3 committed, 4 appended by the returned transaction L and left open, 5
// committed.
func gateWaitLog(t *testing.T) (*sql.DB, *mysqlops.Ops, func() error) {
	t.Helper()
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	ev, err := ops.Append(ctx, "gw-1", eventfold.NoStream, []eventfold.EventData{newEvent("One")})
	require.NoError(t, err)
	require.Equal(t, int64(1), ev[0].GlobalPosition)
	dead := begin(t, db)
	ev, err = mysqlops.New(dead).Append(ctx, "gw-dead", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.Equal(t, int64(2), ev[0].GlobalPosition)
	require.NoError(t, dead.Rollback())
	ev, err = ops.Append(ctx, "gw-3", eventfold.NoStream, []eventfold.EventData{newEvent("Three")})
	require.NoError(t, err)
	require.Equal(t, int64(3), ev[0].GlobalPosition)
	long := begin(t, db)
	ev, err = mysqlops.New(long).Append(ctx, "gw-long", eventfold.NoStream, []eventfold.EventData{newEvent("Long")})
	require.NoError(t, err)
	require.Equal(t, int64(4), ev[0].GlobalPosition)
	ev, err = ops.Append(ctx, "gw-5", eventfold.NoStream, []eventfold.EventData{newEvent("Five")})
	require.NoError(t, err)
	require.Equal(t, int64(5), ev[0].GlobalPosition)
	return db, ops, long.Commit
}

// appendsWhile runs read, and while it runs an unrelated append on the
// pool, which must finish well within the old 50 s gate wait
// (innodb_lock_wait_timeout): 10 s is a bound on "it finished", not a speed.
func appendsWhile(t *testing.T, ops *mysqlops.Ops, stream string, read func() error) {
	t.Helper()
	readDone := make(chan error, 1)
	go func() { readDone <- read() }()
	// Give the reader time to queue at the gate first (ordering, not an
	// assertion: the append must finish whichever runs first).
	time.Sleep(200 * time.Millisecond)
	appended := make(chan error, 1)
	go func() {
		_, err := ops.Append(context.Background(), stream, eventfold.NoStream, []eventfold.EventData{newEvent("Unrelated")})
		appended <- err
	}()
	select {
	case err := <-appended:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("an unrelated append waited more than 10 s behind a reader at the gate")
	}
	select {
	case err := <-readDone:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the reader did not return")
	}
}

// TestGateWaitDoesNotStopAppends is the outside attacker's reproduction:
// transaction L appends (position 4) and stays open; Head and ReadAll over
// the dead position 2 took the gate FOR UPDATE and waited for L for
// innodb_lock_wait_timeout (50 s), and InnoDB queued every new append's
// share request behind that wait: an unrelated append took 49.5 s and the
// reader failed with 1205. Now the gate's wait is short and its timeout is
// not an error: Head returns what it can prove complete (1: position 2 is
// not proven dead while L may hold positions below 5), ReadAll stops at the
// unresolved hole, nothing is skipped, and once L commits both catch up.
// Failed on the old code: the unrelated append did not finish within 10 s.
func TestGateWaitDoesNotStopAppends(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("head", func(t *testing.T) {
		t.Parallel()
		db, ops, commitL := gateWaitLog(t)
		var head int64
		appendsWhile(t, ops, "gw-other", func() (err error) {
			head, err = ops.Head(ctx)
			return err
		})
		require.Equal(t, int64(1), head, "Head proves only what precedes the unresolved hole")
		// The gate's connection went back to the pool with the session's
		// lock wait restored (the pool keeps at most 2 idle connections:
		// hold 3 at once and ask each).
		var global int64
		require.NoError(t, db.QueryRowContext(ctx, `SELECT @@GLOBAL.innodb_lock_wait_timeout`).Scan(&global))
		for i := 0; i < 3; i++ {
			conn, err := db.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			var lwt int64
			require.NoError(t, conn.QueryRowContext(ctx, `SELECT @@SESSION.innodb_lock_wait_timeout`).Scan(&lwt))
			require.Equal(t, global, lwt, "a pool connection kept the gate's short lock wait")
		}
		require.NoError(t, commitL())
		require.Eventually(t, func() bool {
			h, err := ops.Head(ctx)
			require.NoError(t, err)
			require.LessOrEqual(t, h, int64(6))
			return h == 6
		}, 30*time.Second, 100*time.Millisecond, "Head reaches the last position once L has ended")
	})

	t.Run("read all over a dead position", func(t *testing.T) {
		t.Parallel()
		_, ops, commitL := gateWaitLog(t)
		var got []int64
		appendsWhile(t, ops, "gw-other", func() error {
			evs, err := ops.ReadAll(ctx, 2, 10)
			got = positionsOf(evs)
			return err
		})
		require.Empty(t, got, "ReadAll stops at the unresolved hole 2")
		evs, err := ops.ReadAll(ctx, 3, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{3}, positionsOf(evs), "ReadAll from 3 stops below L's position 4")
		require.NoError(t, commitL())
		require.Eventually(t, func() bool {
			evs, err := ops.ReadAll(ctx, 2, 10)
			require.NoError(t, err)
			pos := positionsOf(evs)
			if len(pos) > 0 {
				require.Equal(t, int64(3), pos[0], "nothing before 3, never a skip past a live position")
			}
			return len(pos) == 4
		}, 30*time.Second, 100*time.Millisecond, "ReadAll passes the dead position once L has ended")
		evs, err = ops.ReadAll(ctx, 2, 10)
		require.NoError(t, err)
		require.Equal(t, []int64{3, 4, 5, 6}, positionsOf(evs))
	})

	// Inside the caller's transaction the gate's timeout rolls back only
	// that statement: the transaction goes on, with its session's lock
	// wait as it was.
	t.Run("head in a transaction", func(t *testing.T) {
		t.Parallel()
		db, ops, commitL := gateWaitLog(t)
		tx := begin(t, db)
		_, err := tx.ExecContext(ctx, `SET SESSION innodb_lock_wait_timeout = 7`)
		require.NoError(t, err)
		txOps := mysqlops.New(tx)
		mine, err := txOps.Append(ctx, "gw-tx", eventfold.NoStream, []eventfold.EventData{newEvent("Mine")})
		require.NoError(t, err)
		h, err := txOps.Head(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(1), h)
		var lwt int64
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT @@SESSION.innodb_lock_wait_timeout`).Scan(&lwt))
		require.Equal(t, int64(7), lwt, "the session's lock wait is restored")
		require.NoError(t, tx.Commit())
		v, err := ops.StreamVersion(ctx, "gw-tx")
		require.NoError(t, err)
		require.Equal(t, int64(1), v, "the caller's append at %d committed", mine[0].GlobalPosition)
		require.NoError(t, commitL())
	})
}

// TestHeadWithoutAHoleTakesNoGate: when every position up to the highest
// has committed, Head has nothing to wait for and leaves the gate alone,
// so a poller (Store.WaitHead every 10 ms, a metrics scrape) never makes
// appends wait. Here a transaction holds the gate FOR UPDATE: Head still
// answers at once, without a gate timeout. Failed on the old code (Head
// took the gate and failed with 1205 after innodb_lock_wait_timeout).
//
// Not parallel: GateTimeouts counts for the whole process, and the package's
// parallel tests run only after its sequential ones.
func TestHeadWithoutAHoleTakesNoGate(t *testing.T) {
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	for i := 0; i < 3; i++ {
		_, err := ops.Append(ctx, "nh", eventfold.Any, []eventfold.EventData{newEvent("E")})
		require.NoError(t, err)
	}
	holder := begin(t, db)
	_, err := holder.ExecContext(ctx, `SELECT id FROM eventfold_position WHERE id = 1 FOR UPDATE`)
	require.NoError(t, err)
	timeouts := mysqlops.GateTimeouts()
	h, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), h)
	require.Equal(t, timeouts, mysqlops.GateTimeouts(), "Head tried the gate")
	require.NoError(t, holder.Rollback())
}
