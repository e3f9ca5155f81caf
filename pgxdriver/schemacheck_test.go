package pgxdriver_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// versionReads counts the statements that read the schema version.
type versionReads struct{ n atomic.Int64 }

func (v *versionReads) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "version_id") {
		v.n.Add(1)
	}
	return ctx
}

func (*versionReads) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// A new Store's first writes often come all at once (a process starting
// under load: every client's first command). Each of them read the schema
// version itself, and on a new PostgreSQL connection that check cost ~10 ms
// of server CPU (catalog lookups of goose's table-exists query on a cold
// backend): at 1,000 commands/s over 16 connections the first half second
// of the delivery benchmark fell 0.25–0.5 s behind its schedule. Concurrent
// first checks through the pool now wait for one read of the version.
func TestConcurrentFirstChecksReadTheVersionOnce(t *testing.T) {
	dsn := testdb.SharedDSN(t, eventfold.Postgres)
	const clients = 16
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	cfg, err := pgxpool.ParseConfig(dsn + sep + "pool_max_conns=" + strconv.Itoa(clients))
	require.NoError(t, err)
	reads := &versionReads{}
	cfg.ConnConfig.Tracer = reads
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	drv := pgxdriver.New(pool)
	t.Cleanup(func() { _ = drv.Close() })
	s := eventfold.New(drv, nil) // a new Store: its schema check is still to come

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, clients)
	for i := range clients {
		wg.Go(func() {
			<-start
			errs[i] = s.CheckWritable(ctx)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "check %d", i)
	}
	require.Equal(t, int64(1), reads.n.Load(), "statements that read the schema version for %d concurrent first checks", clients)
	// Answered once, kept: later checks read nothing.
	require.NoError(t, s.CheckWritable(ctx))
	require.Equal(t, int64(1), reads.n.Load())
}
