package mysql_test

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAttack4OlderDumpRestoredUnderARunningProcess: an operator restores
// an older full dump (plain `mysqldump db`, DROP TABLE + CREATE TABLE ...
// AUTO_INCREMENT=6 + the rows) into the live database while a service keeps
// its pool open. The database's floor comes back lower with the dump (lag
// only, by design), but the pool's own settled watermark (settledBelow,
// per *sql.DB, 20 here) stayed: Head ignored it only while it was above the
// log's head; once the restored log grew past it again, Head and ReadAll
// trusted it, and positions below it still held by an open append were
// passed as dead.
//
// Here: position 6 is held by an open append, 7..21 commit. Before the fix
// the old pool's Head said 21 (a new pool said 5) and 6 then committed
// below a Head already given out (seen failing on this tree: Head 21).
// Found on merge-trial (ae16301). Now the mark is anchored on the event at
// its position (event id and recorded_at, read in Head's one statement):
// the event at 20 is not the one the mark was proven on, so the mark is
// dropped and the pool proves from the restored floor: Head <= 5 until 6
// ends, and ReadAll stops at 5.
func TestAttack4OlderDumpRestoredUnderARunningProcess(t *testing.T) {
	dump, err := exec.LookPath("mysqldump")
	if err != nil {
		t.Skip("mysqldump not installed")
	}
	client, err := exec.LookPath("mysql")
	if err != nil {
		t.Skip("mysql client not installed")
	}
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	name := dbName(t, db)
	ops := mysqlops.New(db)
	appendN := func(from, to int64) {
		t.Helper()
		for i := from; i <= to; i++ {
			ev, err := ops.Append(ctx, "od-many", eventfold.Any, []eventfold.EventData{newEvent("Many")})
			require.NoError(t, err)
			require.Equal(t, i, ev[0].GlobalPosition)
		}
	}
	appendN(1, 5)

	cfg := serverConfig(t)
	host, port := "127.0.0.1", "3306"
	if h, p, ok := bytes.Cut([]byte(cfg.Addr), []byte(":")); ok {
		host, port = string(h), string(p)
	}
	args := []string{"-h", host, "-P", port, "-u", cfg.User}
	if cfg.Passwd != "" {
		args = append(args, "-p"+cfg.Passwd)
	}
	old, err := exec.CommandContext(ctx, dump, append(args, "--skip-triggers", name)...).Output()
	require.NoError(t, err, "mysqldump")

	appendN(6, 20)
	h, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(20), h)
	// A second pool of the process that proves 20 too and then reads
	// nothing until the restored log has grown past 20 again.
	idle := secondPool(t, &freshDB{name: name})
	h, err = idle.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(20), h)

	// The restore, with the service running.
	load := exec.CommandContext(ctx, client, append(args, name)...)
	load.Stdin = bytes.NewReader(old)
	msg, err := load.CombinedOutput()
	require.NoError(t, err, "load the dump: %s", msg)
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), h, "the restored log")

	// An append holds 6; 7..21 commit after it.
	tx := begin(t, db)
	ev, err := mysqlops.New(tx).Append(ctx, "od-long", eventfold.NoStream, []eventfold.EventData{newEvent("Long")})
	require.NoError(t, err)
	require.Equal(t, int64(6), ev[0].GlobalPosition)
	appendN(7, 21)

	fresh, err := secondPool(t, &freshDB{name: name}).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(5), fresh, "a new pool stops below the open append")
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	evs, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	idleHead, err := idle.Head(ctx)
	require.NoError(t, err)
	idleEvs, err := idle.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.LessOrEqual(t, h, int64(5), "the running process's Head passed position 6, which then committed")
	require.Equal(t, []int64{1, 2, 3, 4, 5}, positionsOf(evs), "the running process's ReadAll skipped position 6")
	require.LessOrEqual(t, idleHead, int64(5), "the idle pool's Head passed position 6, which then committed")
	require.Equal(t, []int64{1, 2, 3, 4, 5}, positionsOf(idleEvs), "the idle pool's ReadAll skipped position 6")

	// Once 6 has committed, both pools prove the restored log again.
	for _, o := range []*mysqlops.Ops{ops, idle} {
		h, err = o.Head(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(21), h)
		evs, err = o.ReadAll(ctx, 0, 100)
		require.NoError(t, err)
		require.Len(t, evs, 21)
	}
}
