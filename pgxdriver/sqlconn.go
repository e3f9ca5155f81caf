package pgxdriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"

	"github.com/jackc/pgx/v5"
)

// WithSQLConn runs fn with a database/sql connection whose queries run
// inside tx, for code written against database/sql that must read through
// the caller's transaction: the store's first write check reads the schema
// version with goose's own queries through it (eventfold's one reader of
// the version table), where reading through the pool would wait for a
// connection the caller's transactions may all hold. The connection only
// queries (QueryContext, QueryRowContext); it never commits, rolls back or
// closes tx.
func (d *Driver) WithSQLConn(ctx context.Context, tx pgx.Tx, fn func(conn *sql.Conn) error) error {
	db := sql.OpenDB(txConnector{tx})
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(conn)
}

// txConnector hands database/sql one connection: tx.
type txConnector struct{ tx pgx.Tx }

func (c txConnector) Connect(context.Context) (driver.Conn, error) { return txConn(c), nil }
func (c txConnector) Driver() driver.Driver                        { return nil }

// txConn is a database/sql driver connection that runs queries in tx.
type txConn struct{ tx pgx.Tx }

var errQueryOnly = errors.New("pgxdriver: a transaction's database/sql connection only runs queries")

func (txConn) Prepare(string) (driver.Stmt, error) { return nil, errQueryOnly }
func (txConn) Begin() (driver.Tx, error)           { return nil, errQueryOnly }

// Close leaves tx to its owner.
func (txConn) Close() error { return nil }

func (c txConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	rows, err := c.tx.Query(ctx, query, vals...)
	if err != nil {
		return nil, err
	}
	return &txRows{rows: rows}, nil
}

// txRows are pgx rows seen as database/sql driver rows.
type txRows struct{ rows pgx.Rows }

func (r *txRows) Columns() []string {
	fds := r.rows.FieldDescriptions()
	out := make([]string, len(fds))
	for i, fd := range fds {
		out[i] = fd.Name
	}
	return out
}

func (r *txRows) Close() error {
	r.rows.Close()
	return r.rows.Err()
}

func (r *txRows) Next(dest []driver.Value) error {
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	vals, err := r.rows.Values()
	if err != nil {
		return err
	}
	for i := range dest {
		dest[i] = vals[i]
	}
	return nil
}
