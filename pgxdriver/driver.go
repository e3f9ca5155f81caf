package pgxdriver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
	"github.com/eventfold/eventfold/internal/dsnurl"
)

// Driver is eventfold.Driver[pgx.Tx] over a *pgxpool.Pool. It is safe for
// concurrent use.
type Driver struct {
	pool    *pgxpool.Pool
	ownPool bool // opened by Open, so Close closes it
	ops     *postgres.Ops

	dbOnce sync.Once
	db     *sql.DB // lazily opened on pool by DB
}

var (
	_ eventfold.Driver[pgx.Tx]       = (*Driver)(nil)
	_ contract.WriteDeferrer[pgx.Tx] = (*Driver)(nil)
)

// New returns a Driver on the caller's pool. Close never closes the pool;
// the caller does, after closing the Driver.
//
//	store := eventfold.New(pgxdriver.New(pool), nil)
//	if err := store.Migrate(ctx); err != nil { ... }
func New(pool *pgxpool.Pool) *Driver {
	return &Driver{pool: pool, ops: postgres.NewPgx(pool)}
}

// Open connects to the database at dsn (a postgres:// URL or key=value
// string, as pgxpool.ParseConfig accepts) with a pool of its own, which
// Close closes.
func Open(ctx context.Context, dsn string) (*Driver, error) {
	if strings.Contains(dsn, "://") {
		// pgx and net/url may split an unescaped password differently:
		// refuse it, as sqldriver.Open does (key=value strings have no
		// such doubt).
		if err := dsnurl.Check(dsn, eventfold.Postgres); err != nil {
			return nil, fmt.Errorf("pgxdriver: %w", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgxdriver: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgxdriver: open pool: %w", err)
	}
	// Fail now on a wrong host or password rather than on first use.
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		if postgres.NotPostgres(err) {
			// pgx's own words end in "%!w(<nil>)" here.
			return nil, &notPostgresError{addr: fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port), err: err}
		}
		return nil, fmt.Errorf("pgxdriver: connect: %w", err)
	}
	d := New(pool)
	d.ownPool = true
	return d, nil
}

// Pool returns the pool the driver runs on.
func (d *Driver) Pool() *pgxpool.Pool { return d.pool }

// Dialect returns eventfold.Postgres.
func (d *Driver) Dialect() eventfold.Dialect { return eventfold.Postgres }

// Begin starts a READ COMMITTED, read-write transaction. READ COMMITTED is
// what eventfold.append_events is written for: a waiter on a stream's row
// lock re-reads the winner's version instead of failing with a
// serialization error.
//
// It takes a pool connection but sends BEGIN with the transaction's first
// statement, in one network write (see the pgx.Tx it returns, a type of
// this package): a failed BEGIN is reported by that statement, wrapped as
// "pgxdriver: begin: ...". Writes that the store queues for the end of the
// transaction (idempotency records, commit markers) go with COMMIT.
func (d *Driver) Begin(ctx context.Context) (pgx.Tx, error) {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgxdriver: begin: %w", err)
	}
	return &tx{c: c}, nil
}

// Commit commits tx, with the writes queued on it.
func (d *Driver) Commit(ctx context.Context, tx pgx.Tx) error {
	return tx.Commit(ctx)
}

// Rollback rolls tx back; a transaction that already finished is left alone.
func (d *Driver) Rollback(ctx context.Context, tx pgx.Tx) error {
	if err := tx.Rollback(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return err
	}
	return nil
}

// DeferWrites implements the orchestrator's deferred writes (reducers
// registered with orchestrator.WithDeferredWrites): it returns a view of
// t whose Exec queues the statement and returns at once, with the command
// tag "DEFERRED" (RowsAffected 0). Queued statements are sent before the
// transaction's next statement of any kind, or with COMMIT, in one
// pipeline; a failed one aborts the transaction, and the statement that
// sent it (or Commit) returns onError's mapping of its error. ok is false
// when t is not a transaction of this driver (Begin's): t is returned as
// is.
func (d *Driver) DeferWrites(t pgx.Tx, onError func(error) error) (view pgx.Tx, ok bool) {
	pt := txOf(t)
	if pt == nil || pt.closed {
		return t, false
	}
	return deferTx{tx: pt, onError: onError}, true
}

// FlushDeferred sends the writes DeferWrites queued on t now (one round
// trip; none when nothing is queued) and returns the mapped error of the
// first that failed.
func (d *Driver) FlushDeferred(ctx context.Context, t pgx.Tx) error {
	pt := txOf(t)
	if pt == nil || pt.closed {
		return nil
	}
	return pt.flush(ctx)
}

// Ops returns the store operations on the pool.
func (d *Driver) Ops() eventfold.Ops { return d.ops }

// OpsTx returns the store operations inside tx.
// A reducer's view with deferred writes (DeferWrites) gets the
// transaction's own Ops: the store's statements are never deferred.
func (d *Driver) OpsTx(tx pgx.Tx) eventfold.Ops {
	if dt, ok := tx.(deferTx); ok {
		return postgres.NewPgx(dt.tx)
	}
	return postgres.NewPgx(tx)
}

// DB returns a *sql.DB on the same pool (pgx stdlib), opened on first use
// and closed by Close. It borrows pool connections only while in use.
func (d *Driver) DB() *sql.DB {
	d.dbOnce.Do(func() { d.db = stdlib.OpenDBFromPool(d.pool) })
	return d.db
}

// Close closes the *sql.DB made by DB, and the pool if Open made it.
func (d *Driver) Close() error {
	var err error
	// Run the Once so that a DB call after Close cannot open a new handle.
	d.dbOnce.Do(func() {})
	if d.db != nil {
		err = d.db.Close()
	}
	if d.ownPool {
		d.pool.Close()
	}
	return err
}

// notPostgresError is Open's error when the server at the address answered
// in another database's protocol.
type notPostgresError struct {
	addr string
	err  error
}

func (e *notPostgresError) Error() string {
	return fmt.Sprintf("pgxdriver: connect: %s answered, but not as a PostgreSQL server: is that another database's port (MySQL's is 3306, PostgreSQL's 5432)?", e.addr)
}

func (e *notPostgresError) Unwrap() error { return e.err }
