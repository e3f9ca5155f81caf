package mysql_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestAppendEventsUnderAutocommitOffJoinsTheSession (attack3, NOT FIXED:
// the fix is a new migration, whose number the lead hands out): a DBA's
// session with autocommit=0 is one transaction from its first statement.
// When that first statement is CALL eventfold_append_events, the procedure
// asks SET TRANSACTION whether a transaction is active; none is yet (no
// table touched), so it opens and COMMITs its own. The session's later
// ROLLBACK then undoes the DBA's other writes but not the append. Seen on
// MariaDB 10.11: after SET autocommit=0; CALL ...; INSERT ...; ROLLBACK the
// stream is there and the INSERT is not. A fix would treat @@autocommit=0
// as "inside the caller's transaction" (savepoint, no COMMIT).
func TestAppendEventsUnderAutocommitOffJoinsTheSession(t *testing.T) {
	t.Skip("attack3 finding, not fixed: needs a new MySQL migration (number from the lead); see the comment")
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.Up(ctx)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `CREATE TABLE attack3_mine (x INT) ENGINE=InnoDB`)
	require.NoError(t, err)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `SET autocommit = 0`)
	require.NoError(t, err)
	defer conn.ExecContext(context.Background(), `SET autocommit = 1`) //nolint:errcheck
	rows, err := conn.QueryContext(ctx, `CALL eventfold_append_events('ac-off', -2, '[{"id":"00000000-0000-0000-0000-0000000000a0","type":"T","data":{}}]')`)
	require.NoError(t, err)
	for rows.Next() {
	}
	require.NoError(t, rows.Err())
	rows.Close()
	_, err = conn.ExecContext(ctx, `INSERT INTO attack3_mine VALUES (1)`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	var mine, streams int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM attack3_mine`).Scan(&mine))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_streams WHERE stream_id = 'ac-off'`).Scan(&streams))
	require.Zero(t, mine, "the session's ROLLBACK undid its INSERT")
	require.Zero(t, streams, "the session's ROLLBACK should undo the append made in it too")
}
