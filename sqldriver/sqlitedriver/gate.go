package sqlitedriver

import (
	"context"
	"database/sql/driver"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// SQLite lets one connection write at a time, and every transaction this
// driver begins is a write transaction (BEGIN IMMEDIATE). A BEGIN that
// finds the write lock taken waits in SQLite's busy handler, which sleeps
// 1, 2, 5, 10... milliseconds between attempts: with 16 goroutines
// writing, most of them sleep while the lock is free, and each failed
// attempt costs lock system calls. The writer gate queues the write
// transactions of this process in Go instead: a BEGIN waits for the gate
// (first come, first served), and COMMIT or ROLLBACK hands it straight to
// the next in line. SQLite's own lock still decides between processes, and
// between a gated transaction and statements run outside a transaction.
//
// The gate never turns a wait into a failure SQLite would not report: a
// BEGIN that waits longer than gateWait for it goes on without it and
// meets SQLite's busy handling as before (so a goroutine that begins a
// second transaction while holding the first still gets SQLITE_BUSY, after
// gateWait plus the busy timeout, instead of waiting forever).

// gateWait bounds the wait for the gate: the driver's busy timeout.
const gateWait = 10 * time.Second

// writerGate is the gate of one database file.
type writerGate chan struct{}

var (
	gatesMu sync.Mutex
	gates   = map[string]writerGate{}
)

// gateFor returns the gate of the database file at path (DSN parameters
// query), or nil for an in-memory database (each connection has its own,
// unless shared) or one whose busy timeout was set in the DSN (the gate
// waits as long as the driver's default).
func gateFor(path, query string) writerGate {
	if path == ":memory:" || strings.Contains(query, "memory") || strings.Contains(query, "busy_timeout") {
		return nil
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	gatesMu.Lock()
	defer gatesMu.Unlock()
	g := gates[path]
	if g == nil {
		g = make(writerGate, 1)
		gates[path] = g
	}
	return g
}

// acquire waits for the gate; false when ctx ended or gateWait passed
// first (the caller then goes on without it).
func (g writerGate) acquire(ctx context.Context) bool {
	select {
	case g <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(gateWait)
	defer t.Stop()
	select {
	case g <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-t.C:
		return false
	}
}

func (g writerGate) release() { <-g }

// conn is the driver's interface set that database/sql uses, implemented
// by modernc.org/sqlite's connection.
type conn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// gatedConn is a connection whose write transactions pass the gate.
type gatedConn struct {
	conn
	gate writerGate
}

// BeginTx implements driver.ConnBeginTx.
func (c *gatedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly { // a deferred BEGIN: it takes no write lock
		return c.conn.BeginTx(ctx, opts)
	}
	if !c.gate.acquire(ctx) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return c.conn.BeginTx(ctx, opts)
	}
	tx, err := c.conn.BeginTx(ctx, opts)
	if err != nil {
		c.gate.release()
		return nil, err
	}
	return &gatedTx{Tx: tx, gate: c.gate}, nil
}

// Begin implements driver.Conn.
func (c *gatedConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

// gatedTx hands the gate on when it ends.
type gatedTx struct {
	driver.Tx
	gate writerGate
	once sync.Once
}

func (t *gatedTx) Commit() error {
	defer t.once.Do(t.gate.release)
	return t.Tx.Commit()
}

func (t *gatedTx) Rollback() error {
	defer t.once.Do(t.gate.release)
	return t.Tx.Rollback()
}
