package pgxdriver_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// A new Store's first writes are AppendTx calls inside the caller's
// transactions, as many as the pool has connections. The store's one-time
// schema check (is the database newer than this binary?) read the version
// through the pool, so each call waited for a connection the others held:
// every one hung (seen in the merged tree's conformance suite, 6 minutes,
// goroutines in pgxdriver.Begin under readSchemaVersion). It now reads
// through the caller's transaction.
func TestFirstWritesInsideTransactionsOfAFullPool(t *testing.T) {
	dsn := testdb.SharedDSN(t, eventfold.Postgres)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	const conns = 2
	drv, err := pgxdriver.Open(context.Background(), dsn+sep+"pool_max_conns=2")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	s := eventfold.New(drv, nil) // a new Store: its schema check is still to come

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream := streamID(t, "s")
	// All transactions begin before any appends, so the pool is full.
	txs := make([]pgx.Tx, conns)
	for i := range txs {
		tx, err := drv.Begin(ctx)
		require.NoError(t, err)
		_, err = tx.Exec(ctx, "SELECT 1")
		require.NoError(t, err)
		txs[i] = tx
	}
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i, tx := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.AppendTx(ctx, tx, stream+"-"+string(rune('a'+i)), eventfold.NoStream, ev("E", `{}`))
			if errs[i] == nil {
				errs[i] = tx.Commit(ctx)
			} else {
				_ = tx.Rollback(context.WithoutCancel(ctx))
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.False(t, errors.Is(err, context.DeadlineExceeded), "append %d waited for a connection the other transactions held: %v", i, err)
		require.NoError(t, err, "append %d", i)
	}
	// The check is done: a write outside any transaction is answered too.
	require.NoError(t, s.CheckWritable(ctx))
}
