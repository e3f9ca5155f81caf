package mysql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Error numbers this package acts on. The 310xx ones are raised by
// eventfold_append_events (sql/mysql/00001_events.sql) with SIGNAL.
const (
	errWrongExpectedVersion = 31001 // 'eventfold: wrong expected version: actual=<n>'
	errPositionsBehind      = 31004 // 'eventfold: positions behind: ...' (sql/mysql/00018)
	errXAAppend             = 31005 // 'eventfold: append inside an XA transaction refused ...' (sql/mysql/00020)
	errDuplicateKey         = 1062  // ER_DUP_ENTRY
	errRecordChanged        = 1020  // ER_CHECKREAD: MariaDB's snapshot isolation found a row changed since read
	errLockWaitTimeout      = 1205  // ER_LOCK_WAIT_TIMEOUT
	errDeadlock             = 1213  // ER_LOCK_DEADLOCK
	errNoSuchProcedure      = 1305  // ER_SP_DOES_NOT_EXIST

	// Connections refused because too many are open: nothing was run, and
	// a retry once others close may get one (PostgreSQL's 53300 is
	// transient too).
	errTooManyConnections     = 1040 // ER_CON_COUNT_ERROR: the server's max_connections
	errTooManyUserConnections = 1203 // ER_TOO_MANY_USER_CONNECTIONS: the server's max_user_connections
	errUserLimitReached       = 1226 // ER_USER_LIMIT_REACHED: an account's MAX_USER_CONNECTIONS, or an hourly quota
)

// connectionLimit tells whether me refuses a connection because too many
// are open. Error 1226 names the account resource it ran out of: only
// max_user_connections qualifies; an hourly quota (max_queries_per_hour,
// max_updates_per_hour, max_connections_per_hour) lasts until the hour
// ends, which no retry within seconds reaches.
func connectionLimit(me *mysql.MySQLError) bool {
	switch me.Number {
	case errTooManyConnections, errTooManyUserConnections:
		return true
	case errUserLimitReached:
		return strings.Contains(me.Message, "'max_user_connections'")
	}
	return false
}

// Errors of a write the server refuses outright, before it locks anything:
// the account lacks the privilege, the server runs read-only, the
// transaction or the table is read-only.
const (
	errTableAccessDenied = 1142 // ER_TABLEACCESS_DENIED_ERROR: UPDATE command denied
	errReadOnlyServer    = 1290 // ER_OPTION_PREVENTS_STATEMENT: --read-only
	errReadOnlyTx        = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	errReadOnlyTable     = 1036 // ER_OPEN_AS_READONLY
)

// refusedWrite tells whether err is a refused write (see above).
func refusedWrite(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case errTableAccessDenied, errReadOnlyServer, errReadOnlyTx, errReadOnlyTable:
		return true
	}
	return false
}

// eventIDKey is the unique key on eventfold_events.event_id. Servers name it
// in the duplicate-key message ("for key 'eventfold_events_event_id_key'" on
// MariaDB, "for key 'eventfold_events.eventfold_events_event_id_key'" on
// MySQL 8), which is how a duplicate event id is told apart from other
// duplicates.
const eventIDKey = "eventfold_events_event_id_key"

// appendError maps an error from an append of events to streamID under
// expectation expected: a refused expectation becomes
// *eventfold.WrongExpectedVersionError; everything else goes through
// interpretError.
func appendError(err error, streamID string, expected eventfold.ExpectedVersion) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == errWrongExpectedVersion {
		return dialect.WrongVersion(streamID, expected, dialect.ActualFromMessage(me.Message))
	}
	return interpretError(err)
}

// interpretError maps server errors onto eventfold's sentinels, keeping the
// driver's *mysql.MySQLError reachable with errors.As. It is the one place
// where error numbers are read, apart from appendError's version check.
func interpretError(err error) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Number {
	case errDuplicateKey:
		if isEventIDKey(me.Message) {
			return dialect.DuplicateEventID(err)
		}
		if isKey(me.Message, streamVersionKey) {
			// The procedures lock the stream's row and number from its
			// version: a clash means the row is behind the stream's events.
			return fmt.Errorf("%w: the stream's row in eventfold_streams is behind its events (an older dump loaded over this database?): 'esctl doctor' names every such stream", err)
		}
	case errDeadlock, errLockWaitTimeout, errRecordChanged:
		return dialect.Transient(err)
	case errPositionsBehind:
		// AUTO_INCREMENT fell to or below the position floor (TRUNCATE,
		// ALTER TABLE, a dump into a new database): nothing was written; a
		// repair (CheckPositions) or a retry after one cures it.
		return dialect.Transient(fmt.Errorf("%w: %w", eventfold.ErrPositionsBehind, err))
	case errXAAppend:
		// MariaDB releases an XA branch's share locks at XA PREPARE, the
		// gate's among them, so readers could pass a prepared append's
		// positions: appends inside XA are refused (nothing was written).
		return fmt.Errorf("%w: append in an ordinary transaction, not an XA one: %w", eventfold.ErrInvalidInput, err)
	}
	return err
}

// isEventIDKey tells whether a duplicate-key message names the event id key.
// Only the key name at the end counts: the duplicate value quoted before it
// may be any text, a stream id mentioning the key name included.
func isEventIDKey(msg string) bool { return isKey(msg, eventIDKey) }

// streamVersionKey is the unique key on (stream_id, stream_version).
const streamVersionKey = "eventfold_events_stream_version_key"

// isKey tells whether a duplicate-key message names key at its end.
func isKey(msg, key string) bool {
	msg = strings.TrimRight(msg, " '")
	return strings.HasSuffix(msg, "key '"+key) || strings.HasSuffix(msg, "."+key)
}
