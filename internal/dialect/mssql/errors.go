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
	errDeadlockVictim   = 1205
	errLockTimeout      = 1222
	errSnapshotConflict = 3960 // snapshot isolation update conflict
)

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

// interpretError marks errors that a retry may cure as transient and
// returns every other error unchanged.
func interpretError(err error) error {
	for _, e := range sqlErrors(err) {
		switch e.Number {
		case errDeadlockVictim, errLockTimeout, errSnapshotConflict:
			return dialect.Transient(err)
		}
	}
	return err
}

// isUniqueViolation reports whether e is a unique violation of the named
// constraint. Only the part of the message before the duplicate key value
// is searched: the value is user data (a stream id) and could contain
// anything.
func isUniqueViolation(e mssql.Error, constraint string) bool {
	if e.Number != errUniqueConstraint && e.Number != errUniqueIndex {
		return false
	}
	msg, _, _ := strings.Cut(e.Message, "The duplicate key value is")
	return strings.Contains(msg, "'"+constraint+"'")
}
