package mysql_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// autocommitOffCalls are the three append procedures, each called for
// stream s with a fresh event id.
var autocommitOffCalls = []struct {
	name string
	call func(s string, x int) (string, []any)
}{
	{"append_events", func(s string, x int) (string, []any) {
		return `CALL eventfold_append_events(?, ?, ?)`, []any{s, x, procEvents(uuid.NewString())}
	}},
	{"append_one", func(s string, x int) (string, []any) {
		return `CALL eventfold_append_one(?, ?, ?, 'T', '{}', '{}')`, []any{s, x, uuid.NewString()}
	}},
	{"append_batch", func(s string, x int) (string, []any) {
		return `CALL eventfold_append_batch(?)`,
			[]any{fmt.Sprintf(`[{"s":%q,"x":%d,"e":[{"id":%q,"type":"T","data":{}}]}]`, s, x, uuid.NewString())}
	}},
}

// TestAppendUnderAutocommitOffJoinsTheSession (attack3, fixed by migration
// 00021): a DBA's session with autocommit=0 is one transaction from its
// first statement, but the server counts a transaction as active only once
// a statement has touched a table. When the session's first statement was
// CALL eventfold_append_events, the procedure found no transaction (SET
// TRANSACTION succeeded), opened and COMMITted its own, and the session's
// later ROLLBACK undid its other writes but not the append; append_one and
// append_batch refused with 31002 "must be called inside a transaction".
// Seen on MariaDB 10.11 with 00020: the append_events case kept the stream,
// the other two failed with 31002. Since 00021 @@autocommit = 0 counts as
// the caller's transaction: the ROLLBACK undoes the append, a COMMIT keeps
// it, and a failing CALL leaves the session's transaction usable.
func TestAppendUnderAutocommitOffJoinsTheSession(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	_, err := db.ExecContext(ctx, `CREATE TABLE attack3_mine (x INT) ENGINE=InnoDB`)
	require.NoError(t, err)
	for _, c := range autocommitOffCalls {
		t.Run(c.name, func(t *testing.T) {
			conn, err := db.Conn(ctx)
			require.NoError(t, err)
			defer func() {
				_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // not back to the pool
				_ = conn.Close()
			}()
			_, err = conn.ExecContext(ctx, `SET autocommit = 0`)
			require.NoError(t, err)
			call := func(s string, x int) error {
				q, args := c.call(s, x)
				rows, err := conn.QueryContext(ctx, q, args...)
				if err != nil {
					return err
				}
				for rows.Next() {
				}
				if err := rows.Err(); err != nil {
					rows.Close()
					return err
				}
				return rows.Close()
			}
			count := func(q string, args ...any) int {
				t.Helper()
				var n int
				require.NoError(t, db.QueryRowContext(ctx, q, args...).Scan(&n))
				return n
			}
			streams := func(s string) int {
				t.Helper()
				return count(`SELECT COUNT(*) FROM eventfold_streams WHERE stream_id = ?`, s)
			}
			inTx := func() int {
				t.Helper()
				var n int
				require.NoError(t, conn.QueryRowContext(ctx, `SELECT @@in_transaction`).Scan(&n))
				return n
			}
			mark := 100 + len(c.name)

			// The CALL comes first, the session rolls back: nothing of either stays.
			rolled := "ac-off-rolled-" + c.name
			require.Zero(t, inTx(), "nothing begun yet")
			require.NoError(t, call(rolled, -1))
			require.Equal(t, 1, inTx(), "the CALL left the session's transaction open (no COMMIT of its own)")
			_, err = conn.ExecContext(ctx, `INSERT INTO attack3_mine VALUES (?)`, mark)
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, `ROLLBACK`)
			require.NoError(t, err)
			require.Zero(t, count(`SELECT COUNT(*) FROM attack3_mine WHERE x = ?`, mark), "the session's ROLLBACK undid its INSERT")
			require.Zero(t, streams(rolled), "the session's ROLLBACK should undo the append made in it too")

			// The CALL comes first, the session commits: both stay.
			kept := "ac-off-kept-" + c.name
			require.NoError(t, call(kept, -1))
			_, err = conn.ExecContext(ctx, `INSERT INTO attack3_mine VALUES (?)`, mark)
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, `COMMIT`)
			require.NoError(t, err)
			require.Equal(t, 1, count(`SELECT COUNT(*) FROM attack3_mine WHERE x = ?`, mark))
			require.Equal(t, 1, streams(kept))
			require.Equal(t, 1, count(`SELECT COUNT(*) FROM eventfold_events WHERE stream_id = ?`, kept))

			// A CALL that fails first (the stream exists, -2 wanted none) leaves
			// nothing behind and the session's transaction goes on: the next
			// CALL and an INSERT commit with it.
			err = call(kept, -2)
			var me *mysql.MySQLError
			require.ErrorAs(t, err, &me)
			require.Equal(t, uint16(31001), me.Number, me.Message)
			require.NoError(t, call(kept, 1))
			_, err = conn.ExecContext(ctx, `INSERT INTO attack3_mine VALUES (?)`, mark)
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, `COMMIT`)
			require.NoError(t, err)
			require.Equal(t, 2, count(`SELECT COUNT(*) FROM attack3_mine WHERE x = ?`, mark))
			require.Equal(t, 2, count(`SELECT COUNT(*) FROM eventfold_events WHERE stream_id = ?`, kept))
			require.Equal(t, 2, count(`SELECT version FROM eventfold_streams WHERE stream_id = ?`, kept))
		})
	}
}

// TestAppendUnderAutocommitOffKeepsReadOnly: a session with autocommit=0
// that declared its coming transaction READ ONLY and then CALLs
// eventfold_append_events first is refused (1792) and keeps nothing. With
// 00020 the procedure's SET TRANSACTION READ WRITE (its probe) overrode the
// declaration and the append committed on its own (seen on MariaDB 10.11
// with the mysql client); since 00021 the probe is not asked under
// autocommit=0.
func TestAppendUnderAutocommitOffKeepsReadOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // not back to the pool
		_ = conn.Close()
	}()
	_, err = conn.ExecContext(ctx, `SET autocommit = 0`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `SET TRANSACTION READ ONLY`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `CALL eventfold_append_events('ac-off-ro', -1, ?)`, procEvents(uuid.NewString()))
	var me *mysql.MySQLError
	require.ErrorAs(t, err, &me)
	require.Equal(t, uint16(1792), me.Number, me.Message)
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events WHERE stream_id = 'ac-off-ro'`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_streams WHERE stream_id = 'ac-off-ro'`).Scan(&n))
	require.Zero(t, n)
}
