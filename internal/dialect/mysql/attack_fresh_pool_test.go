package mysql_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// secondPool opens another pool on db's database: what a new process
// (a restarted service, esctl stats, a new subscriber) has.
func secondPool(t *testing.T, db *freshDB) *mysqlops.Ops {
	t.Helper()
	cfg := serverConfig(t)
	cfg.DBName = db.name
	return mysqlops.New(openDB(t, cfg))
}

type freshDB struct{ name string }

// TestAttackHeadOfAFreshPoolDuringALongAppend: the settled watermark that
// lets Head answer without the gate lives in the process (per *sql.DB).
// While one append transaction runs longer than the gate's 1 s wait, a
// pool that has not settled anything yet (a process started meanwhile)
// proves completeness only from position 0, up to the first dead position
// anywhere in history (a rolled-back append, a duplicate event id) or the
// first archived one: Head answers 1 here although 1..12 committed long
// before the long transaction began and the first pool, on the same
// database, answers 12. With a log of millions of events and one dead
// position near the start, a subscription created with StartAtHead
// ("only events committed from now on are delivered") then delivers the
// whole history; with an archived prefix Head is 0, and the subscription
// stores checkpoint 0 below the archive and never starts. PostgreSQL's
// horizon only holds Head back to the long transaction's start.
//
// Failed before sql/mysql/00019 (checked: the fresh pool's Head was 1):
// the watermark lived only in the process. Now the first pool's gate take
// raises the position floor in the database to 12, and the fresh pool
// starts from it.
func TestAttackHeadOfAFreshPoolDuringALongAppend(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	var name string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&name))
	ops := mysqlops.New(db)

	ev, err := ops.Append(ctx, "fp-1", eventfold.NoStream, []eventfold.EventData{newEvent("One")})
	require.NoError(t, err)
	require.Equal(t, int64(1), ev[0].GlobalPosition)
	dead := begin(t, db)
	ev, err = mysqlops.New(dead).Append(ctx, "fp-dead", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.Equal(t, int64(2), ev[0].GlobalPosition)
	require.NoError(t, dead.Rollback())
	for i := 3; i <= 12; i++ {
		ev, err = ops.Append(ctx, "fp-many", eventfold.Any, []eventfold.EventData{newEvent("Many")})
		require.NoError(t, err)
		require.Equal(t, int64(i), ev[0].GlobalPosition)
	}
	// The first process reads on: its pool settles past the dead position.
	h, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(12), h)

	// A long append (13) stays open; 14 commits after it.
	long := begin(t, db)
	ev, err = mysqlops.New(long).Append(ctx, "fp-long", eventfold.NoStream, []eventfold.EventData{newEvent("Long")})
	require.NoError(t, err)
	require.Equal(t, int64(13), ev[0].GlobalPosition)
	ev, err = ops.Append(ctx, "fp-14", eventfold.NoStream, []eventfold.EventData{newEvent("Fourteen")})
	require.NoError(t, err)
	require.Equal(t, int64(14), ev[0].GlobalPosition)

	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(12), h, "the first pool: complete up to the long append's position")

	fresh := secondPool(t, &freshDB{name: name})
	h2, err := fresh.Head(ctx)
	require.NoError(t, err)
	require.LessOrEqual(t, h2, int64(12), "never past the undecided position 13")
	require.Equal(t, int64(12), h2,
		"a new process's Head during a long append: 1..12 committed before it began (the dead position 2 was settled by another pool)")
	require.NoError(t, long.Commit())
}
