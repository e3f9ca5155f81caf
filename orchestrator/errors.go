package orchestrator

import (
	"errors"
	"fmt"

	"github.com/eventfold/eventfold"
)

// ErrUnknownCommand is matched by errors for a command name with no handler.
var ErrUnknownCommand = errors.New("orchestrator: unknown command")

// ErrInvalidCommand is matched by errors for a command that could not be
// decoded or whose payload has the wrong type; nothing ran.
var ErrInvalidCommand = errors.New("orchestrator: invalid command")

// ErrRejected is matched by a handler's domain rejection of a command (see
// Reject): the command is wrong for the current state ("insufficient
// funds"), a normal outcome that the caller is told about. Every other
// handler error is unexpected (a database failure, a bug) and is not shown
// to remote callers: package httpapi answers 422 with the message of a
// rejection and 500 "internal error" for the rest.
var ErrRejected = errors.New("orchestrator: command rejected")

// Reject marks err as the handler's domain rejection of the command: return
// Reject(err) from a handler, or declare domain sentinels as
// Reject(errors.New(...)) and wrap them. The result's message is err's,
// it unwraps to err (errors.Is still finds err), and it matches
// ErrRejected. Reject(nil) is nil.
func Reject(err error) error {
	if err == nil {
		return nil
	}
	return &rejection{err: err}
}

type rejection struct{ err error }

func (r *rejection) Error() string        { return r.err.Error() }
func (r *rejection) Unwrap() error        { return r.err }
func (r *rejection) Is(target error) bool { return target == ErrRejected }

// ErrIdempotencyKeyReused is matched (errors.Is) by every
// *IdempotencyKeyReusedError: a command id that was recorded for another
// command or another payload. Nothing ran.
var ErrIdempotencyKeyReused = errors.New("orchestrator: idempotency key reused")

// ErrCommandArchived is matched by the error of a dispatch whose command id
// was recorded but whose events have since been archived: the command ran
// once and will not run again, but its events can no longer be returned.
// Errors matching it also match eventfold.ErrArchived.
var ErrCommandArchived = errors.New("orchestrator: the events of this command were archived")

// IdempotencyKeyReusedError reports a command id (Idempotency-Key) that is
// recorded in the same scope for a different command name or a different
// payload. A recorded command is replayed only to a dispatch of the same
// command with the same payload in the same scope; anything else is a
// client error (a key reused for a new request), refused without running
// anything, never answered with the recorded command's events.
type IdempotencyKeyReusedError struct {
	// CommandID is the reused id.
	CommandID string
	// Scope is the key space it was looked up in.
	Scope string
	// Command is this dispatch's command name; RecordedCommand the name
	// recorded under the id.
	Command, RecordedCommand string
	// PayloadDiffers is true when the names match and the payloads differ.
	PayloadDiffers bool
}

func (e *IdempotencyKeyReusedError) Error() string {
	if e.PayloadDiffers {
		return fmt.Sprintf("orchestrator: command id %q was already used for a %s command with a different payload; use a new id for a new request", e.CommandID, e.Command)
	}
	return fmt.Sprintf("orchestrator: command id %q was already used for a %s command, not %s; use a new id for a new request", e.CommandID, e.RecordedCommand, e.Command)
}

// Is makes errors.Is(err, ErrIdempotencyKeyReused) true.
func (e *IdempotencyKeyReusedError) Is(target error) bool { return target == ErrIdempotencyKeyReused }

// errDuplicateInFlight is what an attempt fails with when a concurrent
// dispatch of the same command id committed first; the retry then finds
// the record and returns the first dispatch's events.
var errDuplicateInFlight = errors.New("orchestrator: the same command id was committed concurrently")

// HandlerError reports that a command handler failed (Command and
// CommandID set); the transaction was rolled back. It is an alias of
// eventfold.HandlerError, the one type that both the orchestrator and the
// listener return, so errors.As matches it under either name.
type HandlerError = eventfold.HandlerError

// AppendError reports that appending a handler's event failed (a wrong
// expected version, a duplicate event id, invalid data ...); the
// transaction was rolled back. Unwrap gives the store's error, so
// errors.Is(err, eventfold.ErrWrongExpectedVersion) holds for conflicts.
type AppendError struct {
	// Command is the command name.
	Command string
	// Index is the position of the failing Emit in the handler's result.
	Index int
	// Stream and EventType describe the failing Emit.
	Stream, EventType string
	// Err is the store's error.
	Err error
}

func (e *AppendError) Error() string {
	return fmt.Sprintf("orchestrator: command %q: append event %d (%s) to stream %q: %v", e.Command, e.Index, e.EventType, e.Stream, e.Err)
}

// Unwrap returns the store's error.
func (e *AppendError) Unwrap() error { return e.Err }

// ReducerError reports that a reducer failed on an event; the transaction,
// including the event, was rolled back.
type ReducerError struct {
	// Reducer is the reducer's name (see WithName; defaults to the Go
	// function name).
	Reducer string
	// Command is the command whose event was being reduced.
	Command string
	// EventType, StreamID, StreamVersion and EventID identify the event
	// (as it would have been recorded).
	EventType     string
	StreamID      string
	StreamVersion int64
	EventID       string
	// Err is what the reducer returned (or the JSON decoding error).
	Err error
}

func (e *ReducerError) Error() string {
	of := fmt.Sprintf(" of command %q", e.Command)
	if e.Command == "" {
		of = " (replay)"
	}
	return fmt.Sprintf("orchestrator: reducer %s failed on event %s (stream %q version %d, id %s)%s: %v",
		e.Reducer, e.EventType, e.StreamID, e.StreamVersion, e.EventID, of, e.Err)
}

// Unwrap returns the reducer's error.
func (e *ReducerError) Unwrap() error { return e.Err }

// CommitError reports that COMMIT failed. With commit markers (the
// default on PostgreSQL, MySQL/MariaDB and SQL Server) the orchestrator has
// already looked up whether the transaction committed: a committed one is
// answered as a success, one that did not commit is retried, and what
// reaches the caller matches ErrCommitOutcomeUnknown (the marker could not
// be looked up) or reports retries exhausted. Without markers the outcome
// may be unknown (the connection may have died after the server
// committed): re-dispatch with the same command id to find out safely.
type CommitError struct {
	Command   string
	CommandID string
	Err       error
}

func (e *CommitError) Error() string {
	return fmt.Sprintf("orchestrator: commit of command %q (id %s): %v", e.Command, e.CommandID, e.Err)
}

// Unwrap returns the driver's error.
func (e *CommitError) Unwrap() error { return e.Err }

// RetriesExhaustedError wraps the last error when every attempt failed with
// a retryable error. errors.Is/As see through it to that error.
type RetriesExhaustedError struct {
	Command  string
	Attempts int
	Err      error
}

func (e *RetriesExhaustedError) Error() string {
	return fmt.Sprintf("orchestrator: command %q gave up after %d attempts: %v", e.Command, e.Attempts, e.Err)
}

// Unwrap returns the last attempt's error.
func (e *RetriesExhaustedError) Unwrap() error { return e.Err }
