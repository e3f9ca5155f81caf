package pgxdriver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestBeginSendsNothingUntilFirstStatement: Begin only takes a connection;
// BEGIN goes with the first statement, which runs inside the transaction
// (the session is "idle in transaction" only afterwards), and every
// statement after it shares the transaction.
func TestBeginSendsNothingUntilFirstStatement(t *testing.T) {
	ctx := context.Background()
	d, err := pgxdriver.Open(ctx, testdb.DSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() }) // after the transactions' cleanups: Close waits for their connections
	begin := func() pgx.Tx {
		tx, err := d.Begin(ctx)
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Rollback(ctx, tx) })
		return tx
	}
	inTx := func() int {
		var n int
		require.NoError(t, d.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&n))
		return n
	}
	_, err = d.Pool().Exec(ctx, "CREATE TABLE lazy (n int)")
	require.NoError(t, err)

	tx := begin()
	require.Equal(t, 0, inTx(), "Begin sent BEGIN on its own")
	_, err = tx.Exec(ctx, "INSERT INTO lazy VALUES ($1)", 1)
	require.NoError(t, err)
	require.Equal(t, 1, inTx())
	var x1, x2 string
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&x1))
	require.NoError(t, tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&x2))
	require.Equal(t, x1, x2)
	require.NoError(t, d.Rollback(ctx, tx))
	var n int
	require.NoError(t, d.Pool().QueryRow(ctx, "SELECT count(*) FROM lazy").Scan(&n))
	require.Equal(t, 0, n, "the first statement ran outside the transaction")

	// A first query (rows), a nested transaction and a batch.
	tx = begin()
	rows, err := tx.Query(ctx, "INSERT INTO lazy VALUES ($1), ($2) RETURNING n", 2, 3)
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Equal(t, []int32{2, 3}, got)
	sp, err := tx.Begin(ctx)
	require.NoError(t, err)
	_, err = sp.Exec(ctx, "INSERT INTO lazy VALUES ($1)", 4)
	require.NoError(t, err)
	require.NoError(t, sp.Rollback(ctx))
	b := &pgx.Batch{}
	b.Queue("INSERT INTO lazy VALUES ($1)", 5)
	require.NoError(t, tx.SendBatch(ctx, b).Close())
	require.NoError(t, d.Commit(ctx, tx))
	require.NoError(t, d.Pool().QueryRow(ctx, "SELECT count(*) FROM lazy").Scan(&n))
	require.Equal(t, 3, n)

	// A first statement that fails leaves the transaction to roll back.
	tx = begin()
	_, err = tx.Exec(ctx, "INSERT INTO lazy VALUES ($1::int / 0)", 1)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "pgxdriver: begin", "the statement failed, not BEGIN")
	require.Equal(t, pgx.ErrTxCommitRollback, d.Commit(ctx, tx))

	// A transaction that sent nothing commits and rolls back for free.
	tx = begin()
	require.NoError(t, d.Commit(ctx, tx))
	require.ErrorIs(t, tx.Commit(ctx), pgx.ErrTxClosed)
}

// TestBeginErrorSurfacesAtFirstStatement: when BEGIN fails (the connection
// died), the first statement reports it as BEGIN's failure.
func TestBeginErrorSurfacesAtFirstStatement(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t, eventfold.Postgres)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	d, err := pgxdriver.Open(ctx, dsn+sep+"pool_max_conns=1") // one connection: the victim
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	var pid int
	require.NoError(t, d.Pool().QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Rollback(ctx, tx) })
	other, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer other.Close(ctx)
	_, err = other.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT $1::int", 1)
	require.Error(t, err)
	require.Contains(t, err.Error(), "pgxdriver: begin:")
}
