package mysql_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestReadAllInTxDoesNotSwallowADeadlock: a reader inside the caller's
// transaction (Store.ReadAllTx) that takes the gate can deadlock with an
// append, and InnoDB then rolls the caller's WHOLE transaction back. The
// gate used to retry the deadlock as if nothing had happened: the retry ran
// on the same connection, now outside any transaction, so ReadAll returned
// events without an error, the caller's later statements autocommitted one
// by one, COMMIT reported success, and what the caller wrote before the
// read (here an append to stream A) was gone. The reader must report the
// deadlock (a transient error: retry the whole transaction) instead.
//
// Set-up: the caller's transaction T1 appends to A (holding A's row). A
// second transaction T2 takes the gate in share mode, allocates position 3
// without a row (an insert that fails on a duplicate event id, as in
// TestReadAllWaitsForAnAllocatedPositionWithoutARow), writes ballast rows
// (so that InnoDB picks the lighter T1 as the deadlock victim) and then
// waits for A's row. Position 5 commits. T1 reads the log from 1: it sees
// 1, 2, 3 (its own) and 5, finds 4 missing, takes the gate behind T2: a cycle.
// Failed on the old code: ReadAll returned [1 2 3 5] with no error and the
// append to A was lost although T1's COMMIT succeeded.
func TestReadAllInTxDoesNotSwallowADeadlock(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	first, err := ops.Append(ctx, "s-1", eventfold.NoStream, []eventfold.EventData{newEvent("First")})
	require.NoError(t, err)
	require.Equal(t, int64(1), first[0].GlobalPosition)
	_, err = ops.Append(ctx, "A", eventfold.NoStream, []eventfold.EventData{newEvent("A")})
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `CREATE TABLE ballast (id INT PRIMARY KEY) ENGINE=InnoDB`)
	require.NoError(t, err)

	t1 := begin(t, db)
	evA, err := mysqlops.New(t1).Append(ctx, "A", 1, []eventfold.EventData{newEvent("A")})
	require.NoError(t, err)
	require.Equal(t, int64(3), evA[0].GlobalPosition)

	t2 := begin(t, db)
	var t2conn int64
	require.NoError(t, t2.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&t2conn))
	_, err = t2.ExecContext(ctx, `SELECT id FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE`)
	require.NoError(t, err)
	_, err = t2.ExecContext(ctx, `INSERT INTO eventfold_events
		(stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
		VALUES ('s-2', 1, ?, 'Dup', '{}', '{}', UTC_TIMESTAMP(6))`, first[0].ID)
	require.Error(t, err, "a duplicate event id: position 4 is allocated, no row")
	for i := 0; i < 200; i++ {
		_, err = t2.ExecContext(ctx, `INSERT INTO ballast VALUES (?)`, i)
		require.NoError(t, err)
	}

	evC, err := ops.Append(ctx, "C", eventfold.NoStream, []eventfold.EventData{newEvent("C")})
	require.NoError(t, err)
	require.Equal(t, int64(5), evC[0].GlobalPosition)

	// T2 waits for A's row, held by T1.
	t2done := make(chan error, 1)
	go func() {
		_, err := t2.ExecContext(ctx, `UPDATE eventfold_streams SET updated_at = UTC_TIMESTAMP(6) WHERE stream_id = 'A'`)
		t2done <- err
	}()
	require.Eventually(t, func() bool {
		var n int
		// Polled every 200ms: InnoDB refreshes INNODB_TRX only when it was
		// not read for 100ms.
		err := db.QueryRowContext(ctx, fmt.Sprintf(`SELECT COUNT(*) FROM information_schema.INNODB_TRX
			WHERE trx_state = 'LOCK WAIT' AND trx_mysql_thread_id = %d`, t2conn)).Scan(&n)
		select {
		case err := <-t2done:
			t.Fatalf("T2's update of stream A ended without waiting: %v", err)
		default:
		}
		require.NoError(t, err)
		return n >= 1
	}, 10*time.Second, 200*time.Millisecond, "T2 waits for stream A's row")

	type result struct {
		pos []int64
		err error
	}
	read := make(chan result, 1)
	go func() {
		evs, err := mysqlops.New(t1).ReadAll(ctx, 1, 10)
		read <- result{positionsOf(evs), err}
	}()
	// The deadlock is detected at once and T1 (the lighter) is its victim:
	// T2's update goes through. End T2 so that a retried gate could proceed.
	select {
	case err := <-t2done:
		require.NoError(t, err, "T2 is not the deadlock victim")
	case <-time.After(30 * time.Second):
		t.Fatal("T2 still waits for stream A: no deadlock was detected")
	}
	require.NoError(t, t2.Commit())

	var r result
	select {
	case r = <-read:
	case <-time.After(30 * time.Second):
		t.Fatal("ReadAll did not return")
	}
	if r.err == nil {
		// Whatever ReadAll says, the caller's transaction must still hold
		// its append: COMMIT and look.
		commitErr := t1.Commit()
		n, err := ops.StreamVersion(ctx, "A")
		require.NoError(t, err)
		t.Fatalf("ReadAll in the caller's transaction returned %v and no error after a deadlock rolled that transaction back "+
			"(COMMIT then said %v; stream A's version is %d: the caller's append is gone)", r.pos, commitErr, n)
	}
	require.ErrorIs(t, r.err, eventfold.ErrTransient, "the deadlock is reported as transient: %v", r.err)
	require.True(t, mysqlops.IsTransient(r.err), fmt.Sprint(r.err))
}
