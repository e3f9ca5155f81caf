package eventfold_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack5MigrateInterruptedMySQL: a migration cancelled midway (esctl
// migrate up and Ctrl-C) on MariaDB. Its DDL commits statement by
// statement, so the cancellation left 00015 half-applied (its first ALTER
// done, its version unrecorded) and every later migrate up failed with
// "Error 1091: Can't DROP CONSTRAINT `eventfold_events_position_positive`;
// check that it exists" (seen with the real binary and SIGINT, and here on
// main). A started migration now finishes, the next one does not start,
// and migrate up goes on from there.
func TestAttack5MigrateInterruptedMySQL(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	conn, d, err := sqldriver.Connector(dsn)
	require.NoError(t, err)
	ictx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	// The interrupt comes as 00015's second statement starts.
	c := &cancelOnStatement{Connector: conn, match: "MODIFY global_position", cancel: interrupt}
	drv, err := sqldriver.New(sql.OpenDB(c), d)
	require.NoError(t, err)
	defer drv.Close()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(d, drv.DB())
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 14)
	require.NoError(t, err)

	err = store.Migrate(ictx)
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, c.seen.Load(), "the interrupt came during 00015")
	v, verr := store.SchemaVersion(ctx)
	require.NoError(t, verr)
	require.Equal(t, int64(15), v, "00015 finished, nothing after it started")
	require.Contains(t, err.Error(), "stopped before migration 16, at version 15")

	require.NoError(t, store.Migrate(ctx), "migrate up goes on")
	latest, err := eventfold.LatestSchemaVersion(d)
	require.NoError(t, err)
	v, err = store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, v)
	evs, err := store.Append(ctx, "s-1", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
	require.NoError(t, err)
	require.Equal(t, int64(1), evs[0].GlobalPosition)
}

// cancelOnStatement calls cancel when a statement containing match is
// executed, just before it runs.
type cancelOnStatement struct {
	driver.Connector
	match  string
	cancel func()
	seen   atomic.Bool
}

func (c *cancelOnStatement) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &cancelConn{conn: conn, c: c}, nil
}

type cancelConn struct {
	conn driver.Conn
	c    *cancelOnStatement
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
	if strings.Contains(q, cc.c.match) {
		cc.c.seen.Store(true)
		cc.c.cancel()
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
