package mssql

import (
	"errors"
	"fmt"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
)

// SQL Server error numbers eventfold reacts to.
const (
	// Raised by eventfold.append_events (sql/mssql/00001_events.sql).
	errWrongExpectedVersion = 50001
	errInvalidInput         = 50002

	errUniqueConstraint = 2627 // violation of a PRIMARY KEY or UNIQUE constraint
	errUniqueIndex      = 2601 // duplicate key row in a unique index
)

// transientNumbers are the SQL Server error numbers after which running
// the whole transaction again may succeed: the transaction was rolled back
// (or never started) and nothing of it is left behind.
var transientNumbers = map[int32]bool{
	1205: true, // deadlock victim
	1222: true, // lock request time out (SET LOCK_TIMEOUT)
	3960: true, // snapshot isolation update conflict
	// Azure SQL Database and Managed Instance: the service is busy, moving
	// or throttling the database. Microsoft's retry guidance lists these.
	40501: true, // the service is currently busy
	40613: true, // database not currently available
	40197: true, // the service encountered an error processing the request
	49918: true, // cannot process request: not enough resources
	49919: true, // cannot process create or update request: too many operations
	49920: true, // cannot process request: too many operations in progress
	10928: true, // resource limit reached (sessions, workers)
	10929: true, // resource minimum guarantee not available
	// The server refused the login because its user connection limit
	// (sp_configure 'user connections') is reached: like PostgreSQL's
	// 53300 and MySQL's 1040, nothing of the transaction ran.
	17809: true,
}

// Constraint names from sql/mssql/00001_events.sql; the messages of errors
// 2627 and 2601 name the constraint or index that was violated.
const (
	constraintEventID       = "uq_events_event_id"
	constraintStreamVersion = "uq_events_stream_version"
)

// sqlErrors returns every SQL Server error in err's chain, in the order the
// server sent them. A batch can carry several (e.g. the error that aborted
// a procedure, then 266 about the transaction count on its exit), and
// go-mssqldb describes only the last one in mssql.Error's own fields.
func sqlErrors(err error) []mssql.Error {
	var e mssql.Error
	if errors.As(err, &e) {
		if len(e.All) > 0 {
			return e.All
		}
		return []mssql.Error{e}
	}
	var pe *mssql.Error
	if errors.As(err, &pe) && pe != nil {
		if len(pe.All) > 0 {
			return pe.All
		}
		return []mssql.Error{*pe}
	}
	return nil
}

// appendError maps an error from eventfold.append_events. This and
// interpretError are the only places that look at SQL Server error numbers.
func appendError(err error, streamID string, expected eventfold.ExpectedVersion) error {
	for _, e := range sqlErrors(err) {
		switch {
		case e.Number == errWrongExpectedVersion:
			return dialect.WrongVersion(streamID, expected, dialect.ActualFromMessage(e.Message))
		case e.Number == errInvalidInput:
			return &eventfold.ValidationError{Field: "append", Reason: strings.TrimPrefix(e.Message, "eventfold: invalid input: ")}
		case isUniqueViolation(e, constraintEventID):
			return dialect.DuplicateEventID(err)
		case isUniqueViolation(e, constraintStreamVersion):
			// A concurrent append took the version first. The procedure's
			// stream lock should prevent this; the constraint is the
			// backstop, and it cannot tell the actual version.
			return dialect.WrongVersion(streamID, expected, "")
		}
	}
	return fmt.Errorf("exec eventfold.append_events: %w", interpretError(err))
}

// IsTransient reports whether err carries a SQL Server error after which
// the whole transaction may be run again: a deadlock, a lock timeout, a
// snapshot update conflict, or one of Azure SQL's "busy, moving or
// throttled" errors. Every error number eventfold treats as transient is
// listed here and nowhere else.
func IsTransient(err error) bool {
	for _, e := range sqlErrors(err) {
		if transientNumbers[e.Number] {
			return true
		}
	}
	return false
}

// Classify returns err marked with eventfold.ErrTransient when IsTransient
// holds, else err unchanged. The driver's mssql.Error stays reachable
// through errors.As either way.
func Classify(err error) error {
	if err == nil || errors.Is(err, eventfold.ErrTransient) || !IsTransient(err) {
		return err
	}
	return dialect.Transient(err)
}

// interpretError is Classify, under the name every dialect package uses
// for its error boundary.
func interpretError(err error) error { return Classify(err) }

func isUniqueViolation(e mssql.Error, constraint string) bool {
	if e.Number != errUniqueConstraint && e.Number != errUniqueIndex {
		return false
	}
	msg, _, _ := strings.Cut(e.Message, "The duplicate key value is")
	return strings.Contains(msg, "'"+constraint+"'")
}
