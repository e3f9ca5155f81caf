package mysql_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// The settled watermark kept in the database (sql/mysql/00019): a gate
// take raises the position floor, and new pools start from it.

// floorLog builds, on a migrated database: 1 committed, 2 dead (rolled
// back), 3..12 committed, and a Head on db's pool, which takes the gate
// (over the dead position) and so raises the floor to 12.
func floorLog(t *testing.T, db *sql.DB) *mysqlops.Ops {
	t.Helper()
	ctx := context.Background()
	ops := mysqlops.New(db)
	_, err := ops.Append(ctx, "fl-1", eventfold.NoStream, []eventfold.EventData{newEvent("One")})
	require.NoError(t, err)
	dead := begin(t, db)
	ev, err := mysqlops.New(dead).Append(ctx, "fl-dead", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.Equal(t, int64(2), ev[0].GlobalPosition)
	require.NoError(t, dead.Rollback())
	for i := 3; i <= 12; i++ {
		ev, err = ops.Append(ctx, "fl-many", eventfold.Any, []eventfold.EventData{newEvent("Many")})
		require.NoError(t, err)
		require.Equal(t, int64(i), ev[0].GlobalPosition)
	}
	h, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(12), h)
	require.Equal(t, int64(12), floorOf(t, db), "the gate take recorded what it proved")
	return ops
}

func floorOf(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var v int64
	require.NoError(t, db.QueryRowContext(context.Background(), `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&v))
	return v
}

func dbName(t *testing.T, db *sql.DB) string {
	t.Helper()
	var name string
	require.NoError(t, db.QueryRowContext(context.Background(), `SELECT DATABASE()`).Scan(&name))
	return name
}

// headDuringLongAppend leaves an append (on db) open, appends one more
// event after it, and returns the long append's position and what a new
// pool's Head says meanwhile; the long append commits when the test ends
// or when commit is called.
func headDuringLongAppend(t *testing.T, db *sql.DB) (long, head int64, commit func()) {
	t.Helper()
	ctx := context.Background()
	tx := begin(t, db)
	ev, err := mysqlops.New(tx).Append(ctx, "fl-long", eventfold.Any, []eventfold.EventData{newEvent("Long")})
	require.NoError(t, err)
	_, err = mysqlops.New(db).Append(ctx, "fl-after", eventfold.Any, []eventfold.EventData{newEvent("After")})
	require.NoError(t, err)
	h, err := secondPool(t, &freshDB{name: dbName(t, db)}).Head(ctx)
	require.NoError(t, err)
	return ev[0].GlobalPosition, h, func() { require.NoError(t, tx.Commit()) }
}

// TestSettledFloorMovesWithADump: the floor travels with `mysqldump
// --no-create-info --replace` into a freshly migrated database (the way
// the README tells to move one): there a new pool's Head during a long
// append passes the dead position 2, and the appends go on above the
// floor. With --insert-ignore the new database keeps its own floor (0):
// Head then lags (stops at 1), and never passes the long append.
func TestSettledFloorMovesWithADump(t *testing.T) {
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
	src := latestDB(t)
	floorLog(t, src)
	// A dead position at the top: the moved AUTO_INCREMENT forgets it.
	dead := begin(t, src)
	ev, err := mysqlops.New(dead).Append(ctx, "fl-dead-top", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.Equal(t, int64(13), ev[0].GlobalPosition)
	require.NoError(t, dead.Rollback())

	cfg := serverConfig(t)
	host, port := "127.0.0.1", "3306"
	if h, p, ok := bytes.Cut([]byte(cfg.Addr), []byte(":")); ok {
		host, port = string(h), string(p)
	}
	args := []string{"-h", host, "-P", port, "-u", cfg.User}
	if cfg.Passwd != "" {
		args = append(args, "-p"+cfg.Passwd)
	}
	move := func(mode string) *sql.DB {
		t.Helper()
		dst := latestDB(t)
		out, err := exec.CommandContext(ctx, dump, append(args, "--no-create-info", mode, "--skip-triggers", dbName(t, src))...).Output()
		require.NoError(t, err, "mysqldump")
		load := exec.CommandContext(ctx, client, append(args, dbName(t, dst))...)
		load.Stdin = bytes.NewReader(out)
		msg, err := load.CombinedOutput()
		require.NoError(t, err, "load the dump: %s", msg)
		return dst
	}

	dst := move("--replace")
	require.Equal(t, int64(12), floorOf(t, dst), "the floor came with the dump")
	long, h, commit := headDuringLongAppend(t, dst)
	require.Equal(t, int64(13), long, "AUTO_INCREMENT forgot the dead 13: above the floor, so not refused")
	require.Equal(t, int64(12), h, "a new pool passes the dead position 2, stops below the long append")
	commit()
	h, err = mysqlops.New(dst).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(14), h)
	evs, err := mysqlops.New(dst).ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, positionsOf(evs))

	ignored := move("--insert-ignore")
	require.Zero(t, floorOf(t, ignored), "the new database kept its own floor")
	_, h, commit = headDuringLongAppend(t, ignored)
	require.Equal(t, int64(1), h, "without the floor: lag, not a skip")
	commit()
}

// TestSettledFloorEditedByHand: a DBA who lowers the floor costs lag (a new
// pool's Head during a long append stops at the dead position again), never
// a skip; one who raises it above the log makes appends refuse until the
// repair, and Head never passes a position that may still commit.
func TestSettledFloorEditedByHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	ops := floorLog(t, db)

	_, err := db.ExecContext(ctx, `UPDATE eventfold_position SET last_position = 0 WHERE id = 1`)
	require.NoError(t, err)
	long, h, commit := headDuringLongAppend(t, db)
	require.Equal(t, int64(13), long)
	require.Equal(t, int64(1), h, "the floor lowered by hand: lag")
	commit()
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(14), h)

	_, err = db.ExecContext(ctx, `UPDATE eventfold_position SET last_position = 100 WHERE id = 1`)
	require.NoError(t, err)
	_, err = ops.Append(ctx, "fl-refused", eventfold.NoStream, []eventfold.EventData{newEvent("Refused")})
	require.ErrorIs(t, err, eventfold.ErrPositionsBehind, "appends refuse at or below the floor")
	h, err = secondPool(t, &freshDB{name: dbName(t, db)}).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(14), h, "the floor above the log: Head is the highest event")
	tx := begin(t, db)
	pc, err := mysqlops.New(tx).CheckPositions(ctx, true)
	require.NoError(t, err)
	require.True(t, pc.Repaired, "%+v", pc)
	require.NoError(t, tx.Commit())
	long, h, commit = headDuringLongAppend(t, db)
	require.Equal(t, int64(102), long, "above the floor after the repair")
	require.Equal(t, int64(100), h, "a new pool: up to the floor, below the long append")
	commit()
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(103), h)
}

// TestSettledFloorAfterTruncate: a TRUNCATE of live events (no archive)
// after a reader recorded the floor: the appends now refuse (before, with
// the floor at 0, they went on at position 1, below every reader), the
// repair puts them above the floor, and a new pool's Head during a long
// append is right.
func TestSettledFloorAfterTruncate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	ops := floorLog(t, db)
	_, err := db.ExecContext(ctx, `TRUNCATE TABLE eventfold_events`)
	require.NoError(t, err)
	_, err = ops.Append(ctx, "fl-t", eventfold.Any, []eventfold.EventData{newEvent("T")})
	require.ErrorIs(t, err, eventfold.ErrPositionsBehind)
	h, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Zero(t, h)
	tx := begin(t, db)
	_, err = mysqlops.New(tx).CheckPositions(ctx, true)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	ev, err := ops.Append(ctx, "fl-t", eventfold.Any, []eventfold.EventData{newEvent("T")})
	require.NoError(t, err)
	require.Greater(t, ev[0].GlobalPosition, int64(12))
	long, h, commit := headDuringLongAppend(t, db)
	require.Equal(t, ev[0].GlobalPosition+1, long)
	// The repair left 13 dead (its rolled-back insert raised AUTO_INCREMENT
	// to 14), above the floor 12: a lag, as for any dead position not
	// proven yet.
	require.Equal(t, int64(14), ev[0].GlobalPosition)
	require.Equal(t, int64(12), h)
	commit()
	h, err = secondPool(t, &freshDB{name: dbName(t, db)}).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, long+1, h)
	require.Equal(t, long+1, floorOf(t, db), "recorded by the gate take")
}

// TestSettledFloorReadOnlyAccount: an account with SELECT only (a
// reporting user, esctl stats): its Head still takes the gate over the
// dead position when no append runs long (the UPDATE is refused, the plain
// locking read takes the gate) and records nothing; during a long append it
// starts from the floor others recorded.
func TestSettledFloorReadOnlyAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	name := dbName(t, db)
	ops := mysqlops.New(db)
	_, err := ops.Append(ctx, "ro-1", eventfold.NoStream, []eventfold.EventData{newEvent("One")})
	require.NoError(t, err)
	dead := begin(t, db)
	_, err = mysqlops.New(dead).Append(ctx, "ro-dead", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.NoError(t, dead.Rollback())
	_, err = ops.Append(ctx, "ro-3", eventfold.NoStream, []eventfold.EventData{newEvent("Three")})
	require.NoError(t, err)

	var b [4]byte
	_, _ = rand.Read(b[:])
	user := "efro_" + hex.EncodeToString(b[:])
	_, err = db.ExecContext(ctx, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'ro-pw'", user))
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.ExecContext(context.Background(), fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
	_, err = db.ExecContext(ctx, fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", name, user))
	require.NoError(t, err)
	cfg := serverConfig(t)
	cfg.DBName, cfg.User, cfg.Passwd = name, user, "ro-pw"
	roDB := openDB(t, cfg)
	ro := mysqlops.New(roDB)
	_, err = roDB.ExecContext(ctx, `UPDATE eventfold_position SET last_position = 3 WHERE id = 1`)
	var me *gomysql.MySQLError
	require.True(t, errors.As(err, &me) && me.Number == 1142, "the account may not update: %v", err)

	h, err := ro.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), h, "the gate taken with the plain locking read")
	require.Zero(t, floorOf(t, db), "nothing recorded")
	evs, err := ro.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 3}, positionsOf(evs))

	// Another pool records the floor; a new read-only pool starts from it.
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), h)
	require.Equal(t, int64(3), floorOf(t, db))
	long := begin(t, db)
	_, err = mysqlops.New(long).Append(ctx, "ro-long", eventfold.NoStream, []eventfold.EventData{newEvent("Long")})
	require.NoError(t, err)
	_, err = ops.Append(ctx, "ro-5", eventfold.NoStream, []eventfold.EventData{newEvent("Five")})
	require.NoError(t, err)
	h, err = mysqlops.New(openDB(t, cfg)).Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), h, "a new read-only pool: from the floor, below the long append")
	require.NoError(t, long.Commit())
}

// TestSettledFloorArchivedPrefix: positions 1..3 archived (esctl archive:
// the floor raised to the watermark - 1, the events deleted), 4..6
// committed: while an append runs long, a new pool's Head is 6. Before
// 00019 it was 0 (it proved from position 0, and 1 is gone), so a
// subscription started at Head stored a checkpoint below the archive.
func TestSettledFloorArchivedPrefix(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	ops := mysqlops.New(db)
	for i := 1; i <= 6; i++ {
		_, err := ops.Append(ctx, "ar", eventfold.Any, []eventfold.EventData{newEvent("A")})
		require.NoError(t, err)
	}
	require.NoError(t, ops.SetArchivedBefore(ctx, 4))
	n, err := ops.DeleteEventRange(ctx, 1, 3)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	long, h, commit := headDuringLongAppend(t, db)
	require.Equal(t, int64(7), long)
	require.Equal(t, int64(6), h)
	commit()
}
