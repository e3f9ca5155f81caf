package postgres

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold/internal/dialect"
)

// stdDB presents a database/sql handle as postgresdb.DBTX, so that the
// generated pgx queries run unchanged on database/sql. It relies on the pgx
// stdlib driver passing arguments through to pgx untouched (its
// CheckNamedValue accepts everything) and on pgtype values implementing
// sql.Scanner for the way back.
type stdDB struct {
	db dialect.DB
}

// Exec runs a statement. database/sql keeps only the affected-row count of
// the command tag, so the tag returned is "EXEC <n>": RowsAffected works,
// the Insert/Update/Delete/Select predicates do not.
func (s stdDB) Exec(ctx context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		// The statement ran; only the count is unknown.
		return pgconn.NewCommandTag("EXEC"), nil
	}
	return pgconn.NewCommandTag("EXEC " + strconv.FormatInt(n, 10)), nil
}

// Query runs a query. Like pgx, it returns usable (closed, failed) rows
// together with an error.
func (s stdDB) Query(ctx context.Context, query string, args ...any) (pgx.Rows, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return &stdRows{err: err}, err
	}
	return &stdRows{rows: rows}, nil
}

// QueryRow runs a query expected to return at most one row.
func (s stdDB) QueryRow(ctx context.Context, query string, args ...any) pgx.Row {
	return stdRow{row: s.db.QueryRowContext(ctx, query, args...)}
}

// stdRow is pgx.Row over *sql.Row. A missing row reports pgx.ErrNoRows, as
// pgx does, so callers check one sentinel whatever the driver.
type stdRow struct {
	row *sql.Row
}

func (r stdRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return pgx.ErrNoRows
	}
	return err
}

// stdRows is pgx.Rows over *sql.Rows. Next, Scan, Close and Err carry the
// generated code; the rest does what database/sql allows.
type stdRows struct {
	rows *sql.Rows // nil when the query failed
	err  error
}

func (r *stdRows) Close() {
	if r.rows != nil {
		if err := r.rows.Close(); err != nil && r.err == nil {
			r.err = err
		}
	}
}

func (r *stdRows) Err() error {
	if r.err != nil {
		return r.err
	}
	if r.rows != nil {
		return r.rows.Err()
	}
	return nil
}

// CommandTag is empty: database/sql does not expose it for queries.
func (r *stdRows) CommandTag() pgconn.CommandTag { return pgconn.CommandTag{} }

// FieldDescriptions carries the column names only.
func (r *stdRows) FieldDescriptions() []pgconn.FieldDescription {
	if r.rows == nil {
		return nil
	}
	cols, err := r.rows.Columns()
	if err != nil {
		return nil
	}
	fds := make([]pgconn.FieldDescription, len(cols))
	for i, c := range cols {
		fds[i].Name = c
	}
	return fds
}

func (r *stdRows) Next() bool {
	return r.rows != nil && r.err == nil && r.rows.Next()
}

func (r *stdRows) Scan(dest ...any) error {
	if r.rows == nil {
		return r.Err()
	}
	return r.rows.Scan(dest...)
}

// Values returns the current row as database/sql converts it.
func (r *stdRows) Values() ([]any, error) {
	if r.rows == nil {
		return nil, r.Err()
	}
	cols, err := r.rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, nil
}

// RawValues is not available through database/sql.
func (r *stdRows) RawValues() [][]byte { return nil }

// Conn is not available through database/sql.
func (r *stdRows) Conn() *pgx.Conn { return nil }

// TypeMap returns a default type map; database/sql hides the connection's.
func (r *stdRows) TypeMap() *pgtype.Map { return defaultTypeMap() }

var defaultTypeMap = sync.OnceValue(pgtype.NewMap)
