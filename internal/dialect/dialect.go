// Package dialect holds what the per-dialect Ops implementations
// (internal/dialect/postgres, mysql, sqlite, mssql) share.
package dialect

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// DB is what a database/sql based dialect runs statements on: *sql.DB,
// *sql.Tx and *sql.Conn all satisfy it, and so does sqlc's generated DBTX.
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// WrongVersion builds the typed error for a refused append. actualText is
// the actual version as the database reported it; it may be empty.
func WrongVersion(streamID string, expected eventfold.ExpectedVersion, actualText string) error {
	actual := int64(-1)
	if v, err := strconv.ParseInt(strings.TrimSpace(actualText), 10, 64); err == nil {
		actual = v
	}
	return &eventfold.WrongExpectedVersionError{StreamID: streamID, Expected: expected, Actual: actual}
}

// ActualFromMessage extracts n from a message containing "actual=<n>".
func ActualFromMessage(msg string) string {
	i := strings.Index(msg, "actual=")
	if i < 0 {
		return ""
	}
	s := msg[i+len("actual="):]
	j := 0
	for j < len(s) && (s[j] == '-' || (s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	return s[:j]
}

// Transient wraps err so that errors.Is(err, eventfold.ErrTransient) holds,
// keeping the driver's error reachable with errors.As.
func Transient(err error) error {
	return &transientError{err: err}
}

type transientError struct{ err error }

func (e *transientError) Error() string {
	return fmt.Sprintf("%v (transient: retry may succeed)", e.err)
}
func (e *transientError) Unwrap() []error {
	return []error{e.err, eventfold.ErrTransient}
}

// DuplicateEventID wraps err so that errors.Is(err, eventfold.ErrDuplicateEventID) holds.
func DuplicateEventID(err error) error {
	return fmt.Errorf("%w: %w", eventfold.ErrDuplicateEventID, err)
}

// ReadLimitClamp keeps SQL LIMIT values in a sane range.
func ReadLimitClamp(limit int) int {
	if limit <= 0 || limit > 100000 {
		return 100000
	}
	return limit
}

// MarkerBound returns the smallest version-7 UUID of time t (its
// millisecond timestamp, every other bit zero): commit markers are UUIDv7,
// so every marker made before t sorts below it, as a uuid and as lower-case
// text alike.
func MarkerBound(t time.Time) string {
	ms := uint64(max(t.UnixMilli(), 0))
	var b [16]byte
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = 0x70 // version 7
	b[8] = 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// CheckSavepointName refuses a savepoint name that is not a plain
// identifier (ASCII letters, digits, underscores, not starting with a
// digit): the dialects write it into the statement, which takes no
// parameters.
func CheckSavepointName(name string) error {
	ok := name != "" && len(name) <= 63 && (name[0] < '0' || name[0] > '9')
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	}
	if !ok {
		return &eventfold.ValidationError{Field: "savepoint name", Reason: fmt.Sprintf("%q is not a plain identifier", name)}
	}
	return nil
}

// Unsupported returns an error matching contract.ErrUnsupported that names
// the operation and the database.
func Unsupported(what string, d eventfold.Dialect) error {
	return fmt.Errorf("%s on %s: %w", what, d, contract.ErrUnsupported)
}

// Classify marks err with eventfold.ErrTransient when isTransient (the
// dialect's own list of error codes) says that running the whole
// transaction again may cure it. nil, an error already marked and every
// other error pass unchanged.
func Classify(err error, isTransient func(error) bool) error {
	if err == nil || errors.Is(err, eventfold.ErrTransient) || !isTransient(err) {
		return err
	}
	return Transient(err)
}

// SavepointStatement returns verb followed by name ("SAVEPOINT x",
// "ROLLBACK TO SAVEPOINT x", SQL Server's "SAVE TRANSACTION x"), after
// CheckSavepointName has refused a name that is not a plain identifier.
func SavepointStatement(verb, name string) (string, error) {
	if err := CheckSavepointName(name); err != nil {
		return "", err
	}
	return verb + " " + name, nil
}
