package testdb

import (
	"context"
	"database/sql/driver"
	"strings"
	"sync/atomic"
)

// CancelOnStatement wraps a connector so that Cancel is called just before
// a statement whose text contains Match is executed (the statement is then
// sent with the caller's context, cancelled or not): a Ctrl-C that arrives
// at a chosen point of a migration.
type CancelOnStatement struct {
	driver.Connector
	Match  string
	Cancel func()
	seen   atomic.Bool
}

// Seen reports whether a statement containing Match was executed.
func (c *CancelOnStatement) Seen() bool { return c.seen.Load() }

// Connect implements driver.Connector.
func (c *CancelOnStatement) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &cancelConn{conn: conn, c: c}, nil
}

type cancelConn struct {
	conn driver.Conn
	c    *CancelOnStatement
}

func (cc *cancelConn) Prepare(q string) (driver.Stmt, error) { return cc.conn.Prepare(q) }
func (cc *cancelConn) Close() error                          { return cc.conn.Close() }
func (cc *cancelConn) Begin() (driver.Tx, error)             { return cc.conn.Begin() } //nolint:staticcheck // driver.Conn requires it

func (cc *cancelConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return cc.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (cc *cancelConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return cc.conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (cc *cancelConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if strings.Contains(q, cc.c.Match) {
		cc.c.seen.Store(true)
		cc.c.Cancel()
	}
	return cc.conn.(driver.ExecerContext).ExecContext(ctx, q, args)
}

func (cc *cancelConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return cc.conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (cc *cancelConn) Ping(ctx context.Context) error { return cc.conn.(driver.Pinger).Ping(ctx) }

func (cc *cancelConn) CheckNamedValue(nv *driver.NamedValue) error {
	return cc.conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

func (cc *cancelConn) ResetSession(ctx context.Context) error {
	return cc.conn.(driver.SessionResetter).ResetSession(ctx)
}
