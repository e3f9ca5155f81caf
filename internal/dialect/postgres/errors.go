package postgres

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
)

// SQLSTATEs and constraint names this package maps; they are defined in
// sql/postgres/00001_events.sql.
const (
	codeWrongExpectedVersion = "EF001" // raised by eventfold.append_events, DETAIL = actual version
	codePositionsBehind      = "EF002" // raised by eventfold.append_events (00006): moved database
	codeStreamOrder          = "EF003" // raised by eventfold.append_events (00014): stream written by a later transaction
	codeUniqueViolation      = "23505"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
	codeTooManyConnections   = "53300" // max_connections, or a role's or database's CONNECTION LIMIT: nothing ran, a retry may get a connection
	codeCannotConnectNow     = "57P03" // the server is starting up or shutting down: the connection was refused, nothing ran

	constraintEventID       = "events_event_id_key"
	constraintCommandKey    = "commands_pkey"
	constraintStreamVersion = "events_stream_id_stream_version_key"
)

// interpretError maps a PostgreSQL error to eventfold's errors; it is the
// one place that knows SQLSTATEs. streamID and expected describe the append
// being run, for the wrong-version error; operations that do not append
// pass "" and eventfold.Any. Errors it does not know pass through unchanged
// (still reachable with errors.As as *pgconn.PgError).
func interpretError(err error, streamID string, expected eventfold.ExpectedVersion) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case codeWrongExpectedVersion:
		return dialect.WrongVersion(streamID, expected, pgErr.Detail)
	case codeUniqueViolation:
		switch pgErr.ConstraintName {
		case constraintEventID:
			return dialect.DuplicateEventID(err)
		case constraintStreamVersion:
			// Since 00015 appends take no stream lock: a concurrent append
			// to the stream inserted the same version first and committed.
			// An append that expected an exact version or no stream is
			// refused (the winner's version is not known here); one that
			// expected any version, or an existing stream, succeeds when
			// the transaction is run again.
			if expected == eventfold.Any || expected == eventfold.StreamExists {
				return dialect.Transient(fmt.Errorf("eventfold: stream %q: a concurrent append committed first: %w", streamID, err))
			}
			return dialect.WrongVersion(streamID, expected, "")
		}
	case codePositionsBehind:
		// A repair (or a retry after one) cures it.
		return dialect.Transient(fmt.Errorf("%w: %w", eventfold.ErrPositionsBehind, err))
	case codeStreamOrder:
		// A new transaction gets a higher xid, so its positions land above
		// the stream's last event: a retry cures it.
		return dialect.Transient(fmt.Errorf("%w: %w", eventfold.ErrStreamOrder, err))
	case codeSerializationFailure:
		if strings.Contains(pgErr.Message, concurrentAppendMessage) {
			// 00015: a concurrent append to the stream committed first;
			// like EF003, a new transaction appends after it.
			return dialect.Transient(fmt.Errorf("%w: %w", eventfold.ErrStreamOrder, err))
		}
		return dialect.Transient(err)
	case codeDeadlockDetected, codeLockNotAvailable:
		return dialect.Transient(err)
	}
	return err
}

// concurrentAppendMessage is part of the 40001 message of
// eventfold.append_refuse (00015) for an append that expected any version
// (or an existing stream) and lost to a concurrent append to its stream.
const concurrentAppendMessage = "was appended to by a concurrent transaction"

// isNoRows reports whether err says a single-row query found nothing: a
// normal answer for some queries, not a failure. stdRow already turns
// sql.ErrNoRows into pgx.ErrNoRows; both are checked so that code using
// database/sql directly is covered too.
func isNoRows(err error) bool {
	return errors.Is(err, pgx.ErrNoRows) || errors.Is(err, sql.ErrNoRows)
}

// NotPostgres reports whether err, from a first connection, says that the
// server at the address answered in another protocol (a MySQL server,
// which speaks first, on the port a postgres:// DSN named). pgx says
// "received unexpected message" and formats a nil error after it
// ("%!w(<nil>)").
func NotPostgres(err error) bool {
	return err != nil && strings.Contains(err.Error(), "received unexpected message")
}
