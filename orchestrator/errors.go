package orchestrator

import (
	"errors"
	"fmt"
)

// ErrUnknownCommand is matched by errors for a command name with no handler.
var ErrUnknownCommand = errors.New("orchestrator: unknown command")

// ErrInvalidCommand is matched by errors for a command that could not be
// decoded or whose payload has the wrong type; nothing ran.
var ErrInvalidCommand = errors.New("orchestrator: invalid command")

// errDuplicateInFlight is what an attempt fails with when a concurrent
// dispatch of the same command id committed first; the retry then finds
// the record and returns the first dispatch's events.
var errDuplicateInFlight = errors.New("orchestrator: the same command id was committed concurrently")

// HandlerError reports that a command handler failed; the transaction was
// rolled back. Unwrap gives the handler's own error, so domain errors stay
// matchable with errors.Is.
type HandlerError struct {
	// Command is the command name.
	Command string
	// CommandID is the command's id (generated when the envelope had none).
	CommandID string
	// Err is what the handler returned.
	Err error
}

func (e *HandlerError) Error() string {
	return fmt.Sprintf("orchestrator: handler for command %q (id %s): %v", e.Command, e.CommandID, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }

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
