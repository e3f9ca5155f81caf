package eventfold

import (
	"errors"
	"fmt"
)

// ErrWrongExpectedVersion is matched (errors.Is) by every
// *WrongExpectedVersionError.
var ErrWrongExpectedVersion = errors.New("eventfold: wrong expected version")

// ErrDuplicateEventID is returned when an appended event's ID is already in
// the log.
var ErrDuplicateEventID = errors.New("eventfold: duplicate event id")

// ErrInvalidInput is matched (errors.Is) by every *ValidationError.
var ErrInvalidInput = errors.New("eventfold: invalid input")

// ErrUnknownDialect is returned for a database that eventfold does not know.
var ErrUnknownDialect = errors.New("eventfold: unknown database dialect")

// ErrArchived is matched when a read asks for events that were moved out of
// the hot table by an archive run. See *ArchivedError.
var ErrArchived = errors.New("eventfold: events archived")

// ErrTransient is wrapped by errors a retry may cure: serialization
// failures, deadlocks, lock timeouts and connections refused because too
// many are open (PostgreSQL 53300, MySQL/MariaDB 1040, 1203 and 1226 for
// max_user_connections), as each database reports them.
var ErrTransient = errors.New("eventfold: transient database conflict")

// ErrPositionsBehind is matched when an append is refused because the log
// holds positions above what the database can assign: a PostgreSQL database
// restored into a new cluster (logical dump/restore, logical replication)
// whose positions were not yet repaired, or a MySQL/MariaDB events table
// whose AUTO_INCREMENT fell to or below the position floor (sql/mysql/00018:
// TRUNCATE, ALTER TABLE, a dump into a new database). Nothing was written. Store.Append
// repairs and retries by itself; elsewhere call Store.CheckPositions(ctx,
// true) (esctl doctor --repair) and retry.
var ErrPositionsBehind = errors.New("eventfold: log positions are ahead of the database's transaction ids (moved database, needs repair)")

// ErrStreamOrder is matched when a PostgreSQL append is refused because a
// transaction that started writing later (a higher transaction id, hence
// higher positions) already appended to the stream: this transaction's
// events would sort before earlier versions of the stream. Nothing was
// written; such errors also match ErrTransient, because a retry in a new
// transaction (a new, higher id) succeeds. Store.Append retries once by
// itself and the orchestrator retries the command.
var ErrStreamOrder = errors.New("eventfold: stream last written by a later transaction (retry in a new transaction)")

// WrongExpectedVersionError reports that a stream was not at the version the
// appender expected. Concurrent appends to one stream with the same
// expectation produce exactly one winner; the others get this error.
type WrongExpectedVersionError struct {
	StreamID string
	Expected ExpectedVersion
	// Actual is the stream's version when the append was refused (0: no
	// stream). It is -1 when the database could not tell.
	Actual int64
}

func (e *WrongExpectedVersionError) Error() string {
	return fmt.Sprintf("eventfold: wrong expected version for stream %q: expected %s, actual %d", e.StreamID, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrWrongExpectedVersion) true.
func (e *WrongExpectedVersionError) Is(target error) bool { return target == ErrWrongExpectedVersion }

// ValidationError reports bad input; nothing was written.
type ValidationError struct {
	// Field names what was wrong, e.g. "stream id" or "event 2 data".
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("eventfold: invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidInput) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidInput }

// ArchivedError reports that a read reached into positions that were
// archived. Events at and above ArchivedBefore are still in the hot table.
type ArchivedError struct {
	// ArchivedBefore is the archive watermark: every event below this
	// global position was archived.
	ArchivedBefore int64
	// Requested is the position or stream version the read asked for.
	Requested int64
}

func (e *ArchivedError) Error() string {
	return fmt.Sprintf("eventfold: events before global position %d are archived (requested %d); restore them with esctl restore", e.ArchivedBefore, e.Requested)
}

// Is makes errors.Is(err, ErrArchived) true.
func (e *ArchivedError) Is(target error) bool { return target == ErrArchived }

// HandlerError reports that user code failed: a command handler in the
// orchestrator (Command and CommandID set; the transaction was rolled back)
// or a subscription's event handler in the listener (Subscription, Event
// and Attempts set; Run returns it once the event failed
// Options.MaxAttempts times, and the checkpoint stays before the event).
// orchestrator.HandlerError and listener.HandlerError are aliases of this
// one type, so errors.As matches it under any of the three names. Unwrap
// gives the handler's own error, so domain errors stay matchable with
// errors.Is.
type HandlerError struct {
	// Command is the command name (orchestrator).
	Command string
	// CommandID is the command's id, generated when the envelope had none
	// (orchestrator).
	CommandID string
	// Subscription is the subscription's name (listener).
	Subscription string
	// Event is the event that failed (listener).
	Event Event
	// Attempts is how many times the event was tried (listener; >= 1).
	Attempts int
	// Err is what the handler returned.
	Err error
}

func (e *HandlerError) Error() string {
	if e.Attempts > 0 { // only the listener counts attempts
		return fmt.Sprintf("listener: subscription %q: event at position %d (%s in stream %q) failed %d times: %v",
			e.Subscription, e.Event.GlobalPosition, e.Event.Type, e.Event.StreamID, e.Attempts, e.Err)
	}
	return fmt.Sprintf("orchestrator: handler for command %q (id %s): %v", e.Command, e.CommandID, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }
