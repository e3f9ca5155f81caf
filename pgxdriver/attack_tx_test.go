package pgxdriver_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestAttackFirstStatementNotSentKeepsTransaction: a transaction's first
// statement that pgx refuses before sending anything (a context already
// done, an argument the simple protocol or the exec mode cannot encode)
// must not leave the transaction believing BEGIN went out: the next
// statement would run outside any transaction (autocommit) and survive
// the rollback, where pgx's own Tx would have rolled it back.
func TestAttackFirstStatementNotSentKeepsTransaction(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t, eventfold.Postgres)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheDescribe} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg, err := pgxpool.ParseConfig(dsn)
			require.NoError(t, err)
			cfg.ConnConfig.DefaultQueryExecMode = mode
			cfg.MaxConns = 1
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			d := pgxdriver.New(pool)
			_, err = pool.Exec(ctx, "DROP TABLE IF EXISTS attack_first; CREATE TABLE attack_first (n int)")
			require.NoError(t, err)
			count := func() int {
				var n int
				require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM attack_first").Scan(&n))
				return n
			}
			done, cancel := context.WithCancel(ctx)
			cancel()
			firsts := []struct {
				name  string
				first func(tx pgx.Tx) error
			}{
				{"Exec with a done context", func(tx pgx.Tx) error {
					_, err := tx.Exec(done, "INSERT INTO attack_first VALUES ($1)", 1)
					return err
				}},
				{"Query with a done context", func(tx pgx.Tx) error {
					rows, err := tx.Query(done, "SELECT $1::int", 1)
					if err == nil {
						rows.Close()
						err = rows.Err()
					}
					return err
				}},
				{"Exec with an argument pgx cannot encode", func(tx pgx.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO attack_first VALUES ($1)", make(chan int))
					return err
				}},
				{"SendBatch with a done context", func(tx pgx.Tx) error {
					b := &pgx.Batch{}
					b.Queue("INSERT INTO attack_first VALUES ($1)", 1)
					return tx.SendBatch(done, b).Close()
				}},
			}
			for _, f := range firsts {
				name, first := f.name, f.first
				tx, err := d.Begin(ctx)
				require.NoError(t, err)
				t.Cleanup(func() { _ = d.Rollback(ctx, tx) }) // frees the pool's one connection on failure
				err = first(tx)
				require.Error(t, err, name)
				require.NotContains(t, err.Error(), "pgxdriver: begin", "%s: BEGIN did not fail", name)
				// In the extended protocol modes pgx closes the connection
				// when it cannot encode a batch's argument (BEGIN was
				// queued before it): the transaction is lost and the next
				// statement fails, which is safe. What must not happen is
				// the next statement committing on its own.
				_, _ = tx.Exec(ctx, "INSERT INTO attack_first VALUES ($1)", 2)
				_ = d.Rollback(ctx, tx)
				require.Equal(t, 0, count(), "%s: the next statement ran outside the transaction and survived its rollback", name)
			}
		})
	}
}

// TestAttackTxUsage: a transaction used the ways pgx's own allows, each
// ending as pgx's would: a failed statement inside a nested transaction
// (savepoint) rolled back leaves the outer one usable and committing; rows
// left open make the next statement fail (conn busy) and the commit fail
// without committing anything, and the pool hands out a clean connection
// afterwards; a QueryRow never scanned does the same.
func TestAttackTxUsage(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(testdb.DSN(t, eventfold.Postgres))
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	d := pgxdriver.New(pool)
	_, err = pool.Exec(ctx, "CREATE TABLE attack_usage (n int)")
	require.NoError(t, err)
	count := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM attack_usage").Scan(&n))
		return n
	}

	// A savepoint first, a failure inside it, recovered.
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	sp, err := tx.Begin(ctx)
	require.NoError(t, err)
	_, err = sp.Exec(ctx, "INSERT INTO attack_usage VALUES ($1::int / 0)", 1)
	require.Error(t, err)
	require.NoError(t, sp.Rollback(ctx))
	_, err = tx.Exec(ctx, "INSERT INTO attack_usage VALUES ($1)", 1)
	require.NoError(t, err)
	require.NoError(t, d.Commit(ctx, tx))
	require.Equal(t, 1, count())

	// Rows left open (the first statement, in BEGIN's batch), then more.
	for _, leave := range []func(pgx.Tx) error{
		func(tx pgx.Tx) error {
			_, err := tx.Query(ctx, "INSERT INTO attack_usage VALUES ($1), ($1) RETURNING n", 2)
			return err
		},
		func(tx pgx.Tx) error {
			_ = tx.QueryRow(ctx, "INSERT INTO attack_usage VALUES ($1) RETURNING n", 2)
			return nil
		},
	} {
		tx, err = d.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, leave(tx))
		_, err = tx.Exec(ctx, "INSERT INTO attack_usage VALUES ($1)", 3)
		require.Error(t, err, "a statement ran while rows were open")
		require.Error(t, d.Commit(ctx, tx), "committed with rows open")
		require.Equal(t, 1, count(), "the transaction with rows left open committed")
		c, err := pool.Acquire(ctx)
		require.NoError(t, err)
		require.Equal(t, byte('I'), c.Conn().PgConn().TxStatus())
		c.Release()
	}
}
