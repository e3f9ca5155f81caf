package mysql_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAttackGateOnAOneConnectionPoolWithItsOwnLockWait: a service whose
// DSN sets innodb_lock_wait_timeout=7 (go-sql-driver sets it on every new
// connection) and whose pool has ONE connection. While an append runs long,
// Head's gate wait times out (Head proves 1), and the connection keeps 7,
// not the gate's 1 and not the server's default; a Head whose context ends
// during the gate wait returns the context's error and the connection
// (discarded: its session may still have the short wait) is replaced by one
// with 7 again; the pool is not left without its connection, and ReadAll and
// Head answer once the long append has ended.
func TestAttackGateOnAOneConnectionPoolWithItsOwnLockWait(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	var name string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&name))
	ops := mysqlops.New(db)
	_, err := ops.Append(ctx, "lw-1", eventfold.NoStream, []eventfold.EventData{newEvent("One")})
	require.NoError(t, err)
	dead := begin(t, db)
	_, err = mysqlops.New(dead).Append(ctx, "lw-dead", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.NoError(t, dead.Rollback())
	long := begin(t, db)
	_, err = mysqlops.New(long).Append(ctx, "lw-long", eventfold.NoStream, []eventfold.EventData{newEvent("Long")})
	require.NoError(t, err)
	_, err = ops.Append(ctx, "lw-4", eventfold.NoStream, []eventfold.EventData{newEvent("Four")})
	require.NoError(t, err)

	cfg := serverConfig(t)
	cfg.DBName = name
	cfg.Params["innodb_lock_wait_timeout"] = "7"
	one := openDB(t, cfg)
	one.SetMaxOpenConns(1)
	oneOps := mysqlops.New(one)
	lockWait := func() int64 {
		t.Helper()
		var v int64
		require.NoError(t, one.QueryRowContext(ctx, `SELECT @@SESSION.innodb_lock_wait_timeout`).Scan(&v))
		return v
	}
	require.Equal(t, int64(7), lockWait())

	h, err := oneOps.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), h)
	require.Equal(t, int64(7), lockWait(), "the gate restored the DSN's lock wait")

	// Past the pool's cooldown (at most 2 s), a Head whose context ends
	// during the gate's wait.
	time.Sleep(2100 * time.Millisecond)
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = oneOps.Head(cctx)
	cancel()
	if err != nil {
		require.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	}
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	defer qcancel()
	var v int64
	require.NoError(t, one.QueryRowContext(qctx, `SELECT @@SESSION.innodb_lock_wait_timeout`).Scan(&v), "the pool's one connection is usable")
	require.Equal(t, int64(7), v, "after a cancelled gate wait")

	require.NoError(t, long.Commit())
	require.Eventually(t, func() bool {
		h, err := oneOps.Head(ctx)
		require.NoError(t, err)
		return h == 4
	}, 15*time.Second, 50*time.Millisecond)
	evs, err := oneOps.ReadAll(ctx, 1, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3, 4}, positionsOf(evs))
	require.Equal(t, int64(7), lockWait())
}
