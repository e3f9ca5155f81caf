package mssql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Ops implements eventfold.Ops on SQL Server, over a pool, a connection or
// one transaction (whatever db is).
type Ops struct {
	db dialect.DB
}

var _ contract.Ops = (*Ops)(nil)

// New returns the store operations run on db: a *sql.DB for work outside
// any transaction, a *sql.Tx for work inside one.
func New(db dialect.DB) *Ops {
	return &Ops{db: db}
}

// Head returns the highest global position in the log, 0 when it is empty.
// Because positions commit in order, every position at or below it is
// settled: committed, or rolled back for good. A locking read, like
// ReadAll and for the same reason.
func (o *Ops) Head(ctx context.Context) (int64, error) {
	var head int64
	err := o.db.QueryRowContext(ctx,
		`SELECT ISNULL(MAX(global_position), 0) FROM eventfold.events WITH (READCOMMITTEDLOCK)`).Scan(&head)
	if err != nil {
		return 0, fmt.Errorf("read head position: %w", interpretError(err))
	}
	return head, nil
}

// StreamVersion returns the stream's current version, 0 when the stream
// does not exist.
func (o *Ops) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	if endsWithSpace(streamID) {
		return 0, nil // no such stream can exist, see the package doc
	}
	var v int64
	err := o.db.QueryRowContext(ctx,
		`SELECT version FROM eventfold.streams WHERE stream_id = @p1`, streamID).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read stream version: %w", interpretError(err))
	}
	return v, nil
}

// Exec runs a statement that returns no rows, e.g. SAVE TRANSACTION and
// ROLLBACK TRANSACTION <savepoint>.
func (o *Ops) Exec(ctx context.Context, query string, args ...any) error {
	if _, err := o.db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("exec %s: %w", firstWords(query), interpretError(err))
	}
	return nil
}

// exactIdentifier refuses an identifier that SQL Server could not tell
// apart from another: its = ignores trailing spaces under every collation,
// Latin1_General_100_BIN2 included, so "pay-X " would find the record of
// "pay-X" (another caller's command, checkpoint or lease). Identifier
// columns are BIN2 (code point order, case- and accent-sensitive), so once
// trailing spaces are ruled out, equal means byte for byte equal. The
// migrations' CHECK constraints refuse such values on the SQL path too.
func exactIdentifier(field, s string) error {
	if endsWithSpace(s) {
		return &eventfold.ValidationError{Field: field, Reason: fmt.Sprintf("%q ends with a space, which SQL Server ignores when it compares strings", s)}
	}
	return nil
}

// endsWithSpace reports whether a stream id ends in U+0020, the one
// character SQL Server ignores at the end of compared strings.
func endsWithSpace(streamID string) bool {
	return strings.HasSuffix(streamID, " ")
}

// firstWords shortens a statement for an error message.
func firstWords(query string) string {
	q := []rune(strings.Join(strings.Fields(query), " "))
	if len(q) > 60 {
		return string(q[:60]) + "..."
	}
	return string(q)
}

// LastPosition implements eventfold.Ops. Positions commit in order here, so
// the highest committed position is the head.
func (o *Ops) LastPosition(ctx context.Context) (int64, error) { return o.Head(ctx) }
