// Package sqldriver runs an eventfold Store over database/sql, on any of
// the four dialects: the transaction type is *sql.Tx.
//
//	import (
//		"github.com/eventfold/eventfold/sqldriver"
//		_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
//	)
//
//	d, err := sqldriver.Open(ctx, "sqlite://eventfold.db")
//	store := eventfold.New(d, nil)
//	err = store.Migrate(ctx)
//
// Open picks the Go driver from the URL scheme (postgres://, mysql://,
// sqlite://, sqlserver://); New wraps a *sql.DB you opened yourself. The
// drivers live in one package per dialect, which the program imports for
// its side effect, as with database/sql's own drivers:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
//
// so that a program links the drivers of the databases it uses and no
// others (sqldriver/all imports every one). This package itself links none.
package sqldriver

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Driver is an eventfold.Driver[*sql.Tx].
type Driver struct {
	db      *sql.DB
	dialect eventfold.Dialect
	newOps  func(dialect.DB) eventfold.Ops
	owned   bool
	txOpts  *sql.TxOptions

	// SQLite allows one writer at a time: writers queue here, in process,
	// instead of spinning on SQLITE_BUSY. A channel so that Begin honours ctx.
	writer chan struct{}
	mu     sync.Mutex
	held   map[*sql.Tx]struct{}

	// stmts keeps eventfold's statements prepared (SQLite only: see
	// stmtCache). nil elsewhere: pgx caches statements itself, and MySQL
	// runs with client-side interpolation, where preparing would switch
	// to the binary protocol and change how values come back.
	stmts *stmtCache
}

var _ eventfold.Driver[*sql.Tx] = (*Driver)(nil)

// New wraps db, which speaks dialect d, whose package must be imported
// (see ErrNotRegistered). The caller keeps ownership of db: Close does not
// close it.
//
// For SQLite, open db with the DSN parameter _txlock=immediate (Open does),
// so that write transactions take the write lock at BEGIN; for MySQL,
// parseTime=true is required.
func New(db *sql.DB, d eventfold.Dialect) (*Driver, error) {
	drv := &Driver{db: db, dialect: d, held: map[*sql.Tx]struct{}{}}
	e, err := lookup(d)
	if err != nil {
		return nil, err
	}
	drv.newOps = e.Ops
	switch d {
	case eventfold.MySQL:
		// READ COMMITTED: no gap locks, so two transactions creating the same
		// new stream conflict on the key (one wins) instead of deadlocking.
		drv.txOpts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	case eventfold.SQLite:
		drv.writer = make(chan struct{}, 1)
		drv.stmts = newStmtCache(db)
	}
	return drv, nil
}

func errUnknown(d eventfold.Dialect) error {
	_, err := eventfold.ParseDialect(string(d))
	if err == nil {
		err = eventfold.ErrUnknownDialect
	}
	return err
}

// Dialect implements eventfold.Driver.
func (d *Driver) Dialect() eventfold.Dialect { return d.dialect }

// DB implements eventfold.Driver.
func (d *Driver) DB() *sql.DB { return d.db }

// Ops implements eventfold.Driver.
func (d *Driver) Ops() eventfold.Ops { return d.newOps(d.db) }

// OpsTx implements eventfold.Driver.
func (d *Driver) OpsTx(tx *sql.Tx) eventfold.Ops {
	if d.stmts != nil {
		return d.newOps(d.stmts.tx(tx))
	}
	return d.newOps(tx)
}

// Begin implements eventfold.Driver.
func (d *Driver) Begin(ctx context.Context) (*sql.Tx, error) {
	if d.stmts != nil {
		// Before taking a connection for the transaction: preparing takes
		// one of its own from the pool.
		d.stmts.prepareLearned(ctx)
	}
	if d.writer != nil {
		select {
		case d.writer <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	tx, err := d.db.BeginTx(ctx, d.txOpts)
	if err != nil {
		d.release(nil)
		return nil, err
	}
	if d.writer != nil {
		d.mu.Lock()
		d.held[tx] = struct{}{}
		d.mu.Unlock()
	}
	return tx, nil
}

// release frees the SQLite writer slot that tx holds (nil: the slot taken
// by a Begin that failed).
func (d *Driver) release(tx *sql.Tx) {
	if d.writer == nil {
		return
	}
	if tx != nil {
		d.mu.Lock()
		_, ok := d.held[tx]
		delete(d.held, tx)
		d.mu.Unlock()
		if !ok {
			return
		}
	}
	<-d.writer
}

// Commit implements eventfold.Driver.
func (d *Driver) Commit(_ context.Context, tx *sql.Tx) error {
	defer d.release(tx)
	return tx.Commit()
}

// Rollback implements eventfold.Driver. Rolling back a finished transaction
// is a no-op.
func (d *Driver) Rollback(_ context.Context, tx *sql.Tx) error {
	defer d.release(tx)
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return err
	}
	return nil
}

// Close closes the database if Open opened it.
func (d *Driver) Close() error {
	if d.stmts != nil {
		d.stmts.close()
	}
	if d.owned {
		return d.db.Close()
	}
	return nil
}
