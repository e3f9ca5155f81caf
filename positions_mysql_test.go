package eventfold_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// MySQL/MariaDB positions after a move (sql/mysql/00018). Positions come
// from eventfold_events' AUTO_INCREMENT, which InnoDB keeps above the rows
// in the table only: once every event is archived, a dump loaded into a
// freshly migrated database, a TRUNCATE or an ALTER TABLE ...
// AUTO_INCREMENT = 1 let the next append take position 1, below the
// archive watermark and every checkpoint, and doctor said positions were
// fine. Each path must be seen by CheckPositions, refused by the append
// itself (ErrPositionsBehind, nothing written) and repaired, after which
// appends land above everything the log had reached.

func mysqlPositionStore(t *testing.T) (*eventfold.Store[*sql.Tx], *sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.DSN(t, eventfold.MySQL))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	db := drv.DB()
	var name string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&name))
	return eventfold.New(drv, nil), db, name
}

var positionData = eventfold.EventData{Type: "T", Data: json.RawMessage(`{"k":1}`)}

// fillAndCheckpoint appends to a few streams and records a subscription
// checkpoint at the last position, which it returns.
func fillAndCheckpoint(t *testing.T, store *eventfold.Store[*sql.Tx], db *sql.DB) (first, last int64) {
	t.Helper()
	ctx := context.Background()
	for i := range 6 {
		evs, err := store.Append(ctx, fmt.Sprintf("s-%d", i%3), eventfold.Any, positionData, positionData)
		require.NoError(t, err)
		if first == 0 {
			first = evs[0].GlobalPosition
		}
		last = evs[1].GlobalPosition
	}
	_, err := db.ExecContext(ctx, `INSERT INTO eventfold_checkpoints (name, position, updated_at) VALUES ('projection', ?, UTC_TIMESTAMP(6))`, last)
	require.NoError(t, err)
	return first, last
}

// archiveAll does what esctl archive does for the whole log: raise the
// watermark above the last event, then delete the events below it.
func archiveAll(t *testing.T, store *eventfold.Store[*sql.Tx], first, last int64) {
	t.Helper()
	ctx := context.Background()
	ops := store.Driver().Ops()
	w, err := ops.ArchivedBefore(ctx)
	require.NoError(t, err)
	ok, err := ops.SwapArchivedBefore(ctx, w, last+1)
	require.NoError(t, err)
	require.True(t, ok)
	_, err = ops.DeleteEventRange(ctx, first, last)
	require.NoError(t, err)
}

// requireRefusedThenRepaired: doctor sees the move; an append inside the
// caller's transaction is refused with ErrPositionsBehind (and starts the
// repair in the background); once repaired, appends land above last.
func requireRefusedThenRepaired(t *testing.T, store *eventfold.Store[*sql.Tx], last int64) {
	t.Helper()
	ctx := context.Background()
	pc, err := store.CheckPositions(ctx, false)
	require.NoError(t, err)
	require.True(t, pc.Applicable, "%+v", pc)
	require.True(t, pc.Moved, "doctor must see the move: %+v", pc)
	require.GreaterOrEqual(t, pc.LastPosition, last)
	require.LessOrEqual(t, pc.NextPosition, last)

	err = store.InTx(ctx, func(tx *sql.Tx) error {
		evs, err := store.AppendTx(ctx, tx, "after-move", eventfold.Any, positionData)
		if err == nil {
			return fmt.Errorf("append got position %d, at or below %d", evs[0].GlobalPosition, last)
		}
		return err
	})
	require.ErrorIs(t, err, eventfold.ErrPositionsBehind)
	require.ErrorIs(t, err, eventfold.ErrTransient)
	// The background repair AppendTx started.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pc, err = store.CheckPositions(ctx, false)
		require.NoError(t, err)
		if !pc.Moved {
			break
		}
		require.True(t, time.Now().Before(deadline), "not repaired in the background: %+v", pc)
		time.Sleep(20 * time.Millisecond)
	}
	require.Greater(t, pc.NextPosition, last, "%+v", pc)
	evs, err := store.Append(ctx, "after-move", eventfold.Any, positionData)
	require.NoError(t, err)
	require.Greater(t, evs[0].GlobalPosition, last)
	v, err := store.StreamVersion(ctx, "after-move")
	require.NoError(t, err)
	require.Equal(t, int64(1), v, "the refused append wrote nothing")
}

func TestMySQLPositionsArchiveAllDumpIntoFreshDatabase(t *testing.T) {
	ctx := context.Background()
	old, oldDB, oldName := mysqlPositionStore(t)
	first, last := fillAndCheckpoint(t, old, oldDB)
	archiveAll(t, old, first, last)

	// mysqldump --no-create-info --replace of the old database, loaded
	// into a freshly migrated one: every row with its values.
	fresh, freshDB, freshName := mysqlPositionStore(t)
	for _, table := range []string{"eventfold_streams", "eventfold_events", "eventfold_position",
		"eventfold_archive_watermark", "eventfold_checkpoints", "eventfold_store_identity"} {
		_, err := freshDB.ExecContext(ctx, fmt.Sprintf("REPLACE INTO `%s`.%s SELECT * FROM `%s`.%s", freshName, table, oldName, table))
		require.NoError(t, err, table)
	}
	requireRefusedThenRepaired(t, fresh, last)

	// Store.Append repairs by itself: a second dump, appended to at once.
	fresh2, fresh2DB, fresh2Name := mysqlPositionStore(t)
	for _, table := range []string{"eventfold_streams", "eventfold_events", "eventfold_position",
		"eventfold_archive_watermark", "eventfold_checkpoints"} {
		_, err := fresh2DB.ExecContext(ctx, fmt.Sprintf("REPLACE INTO `%s`.%s SELECT * FROM `%s`.%s", fresh2Name, table, oldName, table))
		require.NoError(t, err, table)
	}
	evs, err := fresh2.Append(ctx, "s-0", eventfold.Exact(4), positionData)
	require.NoError(t, err)
	require.Greater(t, evs[0].GlobalPosition, last)
	require.Equal(t, int64(5), evs[0].StreamVersion)
}

func TestMySQLPositionsArchiveAllTruncate(t *testing.T) {
	store, db, _ := mysqlPositionStore(t)
	first, last := fillAndCheckpoint(t, store, db)
	archiveAll(t, store, first, last)
	_, err := db.ExecContext(context.Background(), `TRUNCATE TABLE eventfold_events`)
	require.NoError(t, err)
	requireRefusedThenRepaired(t, store, last)
}

func TestMySQLPositionsArchiveAllAlterAutoIncrement(t *testing.T) {
	store, db, _ := mysqlPositionStore(t)
	first, last := fillAndCheckpoint(t, store, db)
	archiveAll(t, store, first, last)
	_, err := db.ExecContext(context.Background(), `ALTER TABLE eventfold_events AUTO_INCREMENT = 1`)
	require.NoError(t, err)
	requireRefusedThenRepaired(t, store, last)
}

// TestMySQLPositionsTruncateLiveLog: the events are truncated without an
// archive (the floor never heard of them): the append cannot tell, but
// doctor sees the checkpoint above AUTO_INCREMENT and its repair (also run
// by Store.Migrate) puts new positions above it.
func TestMySQLPositionsTruncateLiveLog(t *testing.T) {
	ctx := context.Background()
	store, db, _ := mysqlPositionStore(t)
	_, last := fillAndCheckpoint(t, store, db)
	_, err := db.ExecContext(ctx, `TRUNCATE TABLE eventfold_events`)
	require.NoError(t, err)
	pc, err := store.CheckPositions(ctx, false)
	require.NoError(t, err)
	require.True(t, pc.Moved, "doctor must see the move: %+v", pc)
	require.Equal(t, last, pc.LastPosition)
	require.NoError(t, store.Migrate(ctx))
	pc, err = store.CheckPositions(ctx, false)
	require.NoError(t, err)
	require.False(t, pc.Moved, "%+v", pc)
	evs, err := store.Append(ctx, "after-truncate", eventfold.Any, positionData)
	require.NoError(t, err)
	require.Greater(t, evs[0].GlobalPosition, last)
}

// TestMySQLPositionsRepairUnderConcurrentAppends: with AUTO_INCREMENT
// reset below the floor, many appenders at once (each refused, repairing,
// retrying) all end above the floor, with distinct positions, and a reader
// from the floor up gets every one of them in order.
func TestMySQLPositionsRepairUnderConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	store, db, _ := mysqlPositionStore(t)
	first, last := fillAndCheckpoint(t, store, db)
	archiveAll(t, store, first, last)
	_, err := db.ExecContext(ctx, `ALTER TABLE eventfold_events AUTO_INCREMENT = 1`)
	require.NoError(t, err)

	const writers, each = 8, 10
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Store.Append repairs and retries once by itself.
				evs, err := store.Append(ctx, fmt.Sprintf("w-%d", w), eventfold.Exact(int64(i)), positionData)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[evs[0].GlobalPosition] || evs[0].GlobalPosition <= last {
					mu.Unlock()
					errs <- fmt.Errorf("position %d handed out twice or at or below %d", evs[0].GlobalPosition, last)
					return
				}
				seen[evs[0].GlobalPosition] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, writers*each)
	all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: last + 1, Limit: 10 * writers * each})
	require.NoError(t, err)
	require.Len(t, all, writers*each)
	for i, e := range all {
		require.True(t, seen[e.GlobalPosition])
		if i > 0 {
			require.Greater(t, e.GlobalPosition, all[i-1].GlobalPosition)
		}
	}
}
