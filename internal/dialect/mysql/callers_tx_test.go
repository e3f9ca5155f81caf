package mysql_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestFailedCallInCallersTxLeavesNothing: inside the caller's transaction
// a CALL that fails halfway (the events' INSERT hits a duplicate event id
// after the stream row and the counter were updated) is undone whole, so
// a caller that goes on and commits its other work (an application
// handling the error, a script run with mysql --force) stores nothing of
// it. Before 00013 only the failing INSERT was undone: the commit stored
// the stream at a version without events and a dead position. The test
// starts at schema 9 with data written by the old procedure, reproduces
// the torn commit there, migrates up and checks the data and the new
// behaviour, including a caller's own savepoints around the CALL.
func TestFailedCallInCallersTxLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 9)
	require.NoError(t, err)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	call := func(stream string, expected int64, events string) error {
		rows, err := conn.QueryContext(ctx, `CALL eventfold_append_events(?, ?, ?)`, stream, expected, events)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		return errors.Join(rows.Err(), rows.Close())
	}
	exec := func(q string) {
		t.Helper()
		_, err := conn.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	first := uuid.NewString()
	require.NoError(t, call("acct", -2, procEvents(first)))

	// tornCommit: a CALL that fails halfway in the caller's transaction,
	// then the caller's COMMIT.
	tornCommit := func(stream string) error {
		exec(`START TRANSACTION`)
		err := call(stream, -1, procEvents(uuid.NewString(), first))
		var me *gomysql.MySQLError
		require.ErrorAs(t, err, &me)
		require.Equal(t, uint16(1062), me.Number, "the duplicate event id, raised unchanged")
		exec(`COMMIT`)
		return nil
	}
	// Schema 9: the torn append is committed (what the fix is for).
	require.NoError(t, tornCommit("torn-old"))
	require.Equal(t, logState{counter: 3, events: 1, version: 2}, readLogState(t, db, "torn-old"), "schema 9 commits half the CALL")

	_, err = p.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, logState{counter: 3, events: 1, version: 1}, readLogState(t, db, "acct"), "the upgrade keeps the data")

	require.NoError(t, tornCommit("torn-new"))
	require.Equal(t, logState{counter: 3, events: 1, version: 0}, readLogState(t, db, "torn-new"), "nothing of the failed CALL is committed")

	// A caller's own savepoints around the CALL keep working, and a
	// successful CALL in the caller's transaction is the caller's to
	// commit or roll back.
	exec(`START TRANSACTION`)
	exec(`SAVEPOINT mine`)
	require.NoError(t, call("acct", 1, procEvents(uuid.NewString())))
	require.Error(t, call("acct", 7, procEvents(uuid.NewString())))
	require.NoError(t, call("acct", 2, procEvents(uuid.NewString())))
	exec(`ROLLBACK TO SAVEPOINT mine`)
	require.NoError(t, call("acct", 1, procEvents(uuid.NewString())))
	exec(`COMMIT`)
	// The counter row is frozen at 3 since 00015; the positions of the CALLs
	// rolled back to the savepoints are dead, so the committed one is above 4.
	st := readLogState(t, db, "acct")
	require.Equal(t, logState{counter: st.counter, events: 2, version: 2}, st)
	require.Greater(t, st.counter, int64(3))

	// Down to 9 and up again.
	_, err = p.DownTo(ctx, 9)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, call("acct", 2, procEvents(uuid.NewString())))
}

// TestProcedureRefusesOverlongIdentifiers: a CALL by hand with an event
// type or a stream id longer than its column (800 bytes) is refused, in
// strict and in non-strict sql_mode, and stores nothing. Before 00013
// JSON_TABLE cut a 900-byte type to 800 bytes without an error in either
// mode, and in non-strict mode the stream id was cut too: two ids that
// differ only after byte 800 named one stream.
func TestProcedureRefusesOverlongIdentifiers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	for _, mode := range []string{"STRICT_TRANS_TABLES", ""} {
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, `SET SESSION sql_mode = ?`, mode)
		require.NoError(t, err)
		call := func(stream, events string) error {
			rows, err := conn.QueryContext(ctx, `CALL eventfold_append_events(?, -1, ?)`, stream, events)
			if err != nil {
				return err
			}
			for rows.Next() {
			}
			return errors.Join(rows.Err(), rows.Close())
		}
		typ := long("T", 900)
		err = call("s-"+mode, `[{"id": "`+uuid.NewString()+`", "type": "`+typ+`", "data": {}}]`)
		require.Error(t, err, "sql_mode %q: a 900-byte type", mode)
		stream := long("s", 850)
		err = call(stream+"a", procEvents(uuid.NewString()))
		require.Error(t, err, "sql_mode %q: an 851-byte stream id", mode)
		err = call(stream+"b", procEvents(uuid.NewString()))
		require.Error(t, err, "sql_mode %q: an 851-byte stream id", mode)
		require.NoError(t, conn.Close())
	}
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
	require.Zero(t, n, "nothing was stored")
	// 800 bytes, the column's size, still go in.
	rows, err := db.QueryContext(ctx, `CALL eventfold_append_events(?, -1, ?)`, long("s", 800), `[{"id": "`+uuid.NewString()+`", "type": "`+long("T", 800)+`", "data": {}}]`)
	require.NoError(t, err)
	for rows.Next() {
	}
	require.NoError(t, rows.Err())
	rows.Close()
}
