package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestLibraryProceduresRefuseAutocommit (attack finding 4): 00015's
// eventfold_append_one and eventfold_append_batch, the Go library's
// procedures, trusted to run inside its transaction; a DBA's CALL in
// autocommit committed each statement on its own: append_one committed the
// event and then failed with 1305 (no savepoint), append_batch with a
// duplicate event id left its stream raised. 00016 makes both refuse a call
// outside a transaction (31002) before they write anything; inside one
// they work as before; its Down restores 00015's procedures exactly.
// Failed on the old code (00016 without the procedures): the autocommit
// append_one wrote stream ac-one.
func TestLibraryProceduresRefuseAutocommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 15)
	require.NoError(t, err)
	ops := mysqlops.New(db)
	first, err := ops.Append(ctx, "ac-before", eventfold.NoStream, []eventfold.EventData{newEvent("Before")})
	require.NoError(t, err)
	at15 := procedureBodies(t, db)
	_, err = p.Up(ctx)
	require.NoError(t, err)

	refused := func(err error) {
		t.Helper()
		var me *gomysql.MySQLError
		require.True(t, errors.As(err, &me), "a server error: %v", err)
		require.Equal(t, uint16(31002), me.Number, me.Message)
		require.Contains(t, me.Message, "inside a transaction")
	}
	countEvents := func() int {
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
		return n
	}
	conn, err := db.Conn(ctx) // one session, autocommit on
	require.NoError(t, err)
	defer func() { require.NoError(t, conn.Close()) }()
	_, err = conn.ExecContext(ctx, `CALL eventfold_append_one('ac-one', -1, ?, 'One', '{}', '{}')`, uuid.NewString())
	refused(err)
	batch := func(stream, id string) string {
		return fmt.Sprintf(`[{"s": %q, "x": -1, "e": [{"id": %q, "type": "Ok", "data": {}, "metadata": {}}]},
			{"s": "ac-batch-2", "x": -1, "e": [{"id": %q, "type": "Dup", "data": {}, "metadata": {}}]}]`,
			stream, uuid.NewString(), id)
	}
	_, err = conn.ExecContext(ctx, `CALL eventfold_append_batch(?)`, batch("ac-batch-1", first[0].ID))
	refused(err)
	for _, s := range []string{"ac-one", "ac-batch-1", "ac-batch-2"} {
		v, err := ops.StreamVersion(ctx, s)
		require.NoError(t, err)
		require.Zero(t, v, "the refused call wrote stream %s", s)
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_streams WHERE stream_id = ?`, s).Scan(&n))
		require.Zero(t, n, "the refused call left a row for stream %s", s)
	}
	require.Equal(t, 1, countEvents())

	// Inside a transaction both work, and a failing batch leaves nothing.
	tx, err := conn.BeginTx(ctx, nil)
	require.NoError(t, err)
	rows, err := tx.QueryContext(ctx, `CALL eventfold_append_one('ac-one', -1, ?, 'One', '{}', '{}')`, uuid.NewString())
	require.NoError(t, err)
	require.NoError(t, drain(rows))
	_, err = tx.ExecContext(ctx, `CALL eventfold_append_batch(?)`, batch("ac-batch-1", first[0].ID))
	require.Error(t, err, "a duplicate event id")
	rows, err = tx.QueryContext(ctx, `CALL eventfold_append_batch(?)`, batch("ac-batch-1", uuid.NewString()))
	require.NoError(t, err)
	require.NoError(t, drain(rows))
	require.NoError(t, tx.Commit())
	for s, want := range map[string]int64{"ac-one": 1, "ac-batch-1": 1, "ac-batch-2": 1} {
		v, err := ops.StreamVersion(ctx, s)
		require.NoError(t, err)
		require.Equal(t, want, v, s)
	}
	require.Equal(t, 4, countEvents())
	// And the library's own appends (they run these procedures).
	_, err = ops.Append(ctx, "ac-lib", eventfold.NoStream, []eventfold.EventData{newEvent("Lib")})
	require.NoError(t, err)
	_, err = ops.Append(ctx, "ac-lib", 1, []eventfold.EventData{newEvent("Lib"), newEvent("Lib")})
	require.NoError(t, err)

	_, err = p.DownTo(ctx, 15)
	require.NoError(t, err)
	require.Equal(t, at15, procedureBodies(t, db), "00016's Down restores 00015's procedures")
	_, err = p.Up(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `CALL eventfold_append_one('ac-again', -1, ?, 'One', '{}', '{}')`, uuid.NewString())
	refused(err)
}

// procedureBodies returns the library procedures' definitions and comments.
func procedureBodies(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT ROUTINE_NAME, ROUTINE_DEFINITION, ROUTINE_COMMENT
		FROM information_schema.ROUTINES
		WHERE ROUTINE_SCHEMA = DATABASE() AND ROUTINE_NAME IN ('eventfold_append_one', 'eventfold_append_batch')`)
	require.NoError(t, err)
	out := map[string]string{}
	for rows.Next() {
		var name, def, comment string
		require.NoError(t, rows.Scan(&name, &def, &comment))
		out[name] = def + "\n-- " + comment
	}
	require.NoError(t, rows.Err())
	require.Len(t, out, 2)
	return out
}

// drain reads a CALL's result sets to the end.
func drain(rows *sql.Rows) error {
	for {
		for rows.Next() {
		}
		if !rows.NextResultSet() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}
