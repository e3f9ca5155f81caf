package orchestrator_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestAttackPgxExecModesAndTinyPool: the commit pipeline (BEGIN with the
// first statement, record and marker with COMMIT) under the exec modes a
// user may set on the pool that eventfold's append works with, on a pool of one connection and of four, with a handler that uses
// its transaction every way pgx allows (first statement without
// arguments, QueryRow, rows read to the end, a batch, a nested transaction
// rolled back, SET LOCAL). Concurrent dispatches of one key with the same
// and another payload answer as on the default mode: one applied, the same
// payload replays, another is ErrIdempotencyKeyReused; nothing deadlocks,
// the savepoint's write is undone and SET LOCAL does not leak to the
// pool's next user.
func TestAttackPgxExecModesAndTinyPool(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		for _, conns := range []int32{1, 4} {
			t.Run(fmt.Sprintf("%s/conns=%d", mode, conns), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cfg, err := pgxpool.ParseConfig(dsn)
				require.NoError(t, err)
				cfg.ConnConfig.DefaultQueryExecMode = mode
				cfg.MaxConns = conns
				pool, err := pgxpool.NewWithConfig(ctx, cfg)
				require.NoError(t, err)
				t.Cleanup(pool.Close)
				_, err = pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS attack_side (n int)")
				require.NoError(t, err)
				drv := pgxdriver.New(pool)
				store := eventfold.New(drv, nil)
				o := orchestrator.New(store, &orchestrator.Config{DispatchCommitMarkers: true, MaxAttempts: 50, BaseBackoff: time.Millisecond})
				orchestrator.Handle(o, "Deposit", func(ctx context.Context, tx pgx.Tx, c idemDeposit) ([]orchestrator.Emit, error) {
					if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 4321"); err != nil {
						return nil, err
					}
					var n int64
					if err := tx.QueryRow(ctx, "SELECT $1::bigint", c.Amount).Scan(&n); err != nil {
						return nil, err
					}
					rows, err := tx.Query(ctx, "SELECT generate_series(1, $1::int)", 3)
					if err != nil {
						return nil, err
					}
					if _, err := pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
						return nil, err
					}
					b := &pgx.Batch{}
					b.Queue("SELECT $1::text", c.Wallet)
					b.Queue("SELECT 1")
					if err := tx.SendBatch(ctx, b).Close(); err != nil {
						return nil, err
					}
					sp, err := tx.Begin(ctx)
					if err != nil {
						return nil, err
					}
					if _, err := sp.Exec(ctx, "INSERT INTO attack_side VALUES ($1)", n); err != nil {
						return nil, err
					}
					if err := sp.Rollback(ctx); err != nil {
						return nil, err
					}
					return []orchestrator.Emit{{Stream: "wallet-" + c.Wallet, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
				})
				run := fmt.Sprintf("%s-%d-%d", mode, conns, time.Now().UnixNano())
				const n = 12
				var wg sync.WaitGroup
				errs := make([]error, n)
				results := make([]*orchestrator.Result, n)
				for i := range n {
					wg.Go(func() {
						amount := int64(10)
						if i%4 >= 2 {
							amount = 20 // the key of i-2 with another payload
						}
						results[i], errs[i] = o.Dispatch(ctx, orchestrator.Command{Name: "Deposit",
							Payload: idemDeposit{Wallet: run, Amount: amount}, Envelope: as("u", fmt.Sprintf("%s-k%d", run, i/4))})
					})
				}
				wg.Wait()
				applied, reused := 0, 0
				for i := range n {
					if errs[i] != nil {
						require.ErrorIs(t, errs[i], orchestrator.ErrIdempotencyKeyReused, "command %d", i)
						reused++
						continue
					}
					if !results[i].Duplicate {
						applied++
					}
				}
				require.Equal(t, n/2, reused)
				require.Equal(t, n/4, applied)
				evs, err := store.ReadStream(ctx, "wallet-"+run, eventfold.ReadStreamOptions{})
				require.NoError(t, err)
				require.Len(t, evs, n/4)
				var side int
				require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM attack_side").Scan(&side))
				require.Zero(t, side, "the rolled back savepoint's write committed")
				// Every connection of the pool: SET LOCAL ended with its transaction.
				held := make([]*pgxpool.Conn, 0, conns)
				defer func() {
					for _, c := range held {
						c.Release()
					}
				}()
				for range pool.Stat().TotalConns() {
					c, err := pool.Acquire(ctx)
					require.NoError(t, err)
					held = append(held, c)
					var st string
					require.NoError(t, c.QueryRow(ctx, "SHOW statement_timeout").Scan(&st))
					require.NotEqual(t, "4321ms", st, "SET LOCAL leaked to the pool's next user")
					require.Equal(t, byte('I'), c.Conn().PgConn().TxStatus(), "a pool connection was handed out inside a transaction")
				}
			})
		}
	}
}
