package sqldriver

import (
	"context"
	"database/sql"
	"sync"

	"github.com/eventfold/eventfold/internal/dialect"
)

// maxCachedStmts bounds the statements a stmtCache keeps prepared. The
// dialect code runs a few dozen distinct statements at most; the bound
// only guards against SQL built at run time.
const maxCachedStmts = 64

// maxPrepareFailures is how often a statement may fail to prepare before
// the cache stops trying (it then runs unprepared, as before).
const maxPrepareFailures = 3

// stmtCache keeps eventfold's own statements prepared, so that a
// transaction runs them without parsing them again. On SQLite (modernc,
// pure Go) parsing and planning was about a fifth of a dispatch's CPU.
//
// It learns which statements to prepare from the transactions: a
// statement run through a transaction's Ops is noted, and prepared on the
// pool at the next Begin, before that Begin takes its connection. Never
// inside a transaction: with a pool of one connection (common for SQLite)
// preparing on the pool while the transaction holds that connection would
// wait forever. Inside a transaction a prepared statement is bound to the
// transaction's connection with Tx.StmtContext, which database/sql
// prepares once per connection and then reuses.
type stmtCache struct {
	pool *sql.DB

	mu       sync.RWMutex
	stmts    map[string]*sql.Stmt // prepared on the pool
	pending  map[string]struct{}  // seen in a transaction, not prepared yet
	failures map[string]int       // failed prepares per statement
	closed   bool
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}, pending: map[string]struct{}{}, failures: map[string]int{}}
}

// prepareLearned prepares the statements noted since the last call. It
// runs outside any transaction of the caller (see stmtCache). A failure
// (the schema is not installed yet, the database is unreachable) leaves
// the statement unprepared; it is tried again when a transaction runs it.
func (c *stmtCache) prepareLearned(ctx context.Context) {
	c.mu.RLock()
	n := len(c.pending)
	c.mu.RUnlock()
	if n == 0 {
		return
	}
	c.mu.Lock()
	queries := make([]string, 0, len(c.pending))
	for q := range c.pending {
		queries = append(queries, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range queries {
		st, err := c.pool.PrepareContext(ctx, q)
		c.mu.Lock()
		switch {
		case err != nil:
			if ctx.Err() == nil { // a cancelled caller says nothing about q
				c.failures[q]++
			}
		case c.closed || c.stmts[q] != nil || len(c.stmts) >= maxCachedStmts:
			_ = st.Close()
		default:
			c.stmts[q] = st
		}
		c.mu.Unlock()
	}
}

// stmt returns the prepared statement for query, or nil (after noting
// query for the next Begin) when there is none yet.
func (c *stmtCache) stmt(query string) *sql.Stmt {
	c.mu.RLock()
	st := c.stmts[query]
	c.mu.RUnlock()
	if st != nil {
		return st
	}
	c.mu.Lock()
	if !c.closed && c.stmts[query] == nil && len(c.stmts)+len(c.pending) < maxCachedStmts && c.failures[query] < maxPrepareFailures {
		c.pending[query] = struct{}{}
	}
	c.mu.Unlock()
	return nil
}

// close closes the prepared statements; the cache prepares no more.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
	clear(c.pending)
}

// tx returns tx as a dialect.DB that runs the cache's statements prepared.
func (c *stmtCache) tx(tx *sql.Tx) dialect.DB { return &cachedTx{Tx: tx, c: c} }

// cachedTx is a *sql.Tx whose statements go through a stmtCache.
// PrepareContext is the embedded *sql.Tx's.
type cachedTx struct {
	*sql.Tx
	c *stmtCache
}

// ExecContext implements dialect.DB.
func (t *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.c.stmt(query); st != nil {
		return t.Tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

// QueryContext implements dialect.DB.
func (t *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.c.stmt(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

// QueryRowContext implements dialect.DB.
func (t *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.c.stmt(query); st != nil {
		return t.Tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}
