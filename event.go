package eventfold

import (
	"fmt"
	"strconv"

	"github.com/eventfold/eventfold/internal/contract"
)

// EventData is an event to append: what a command handler produces. It is
// declared with the store/dialect contract (internal/contract).
type EventData = contract.EventData

// Event is an event recorded in the log. It is declared with the
// store/dialect contract (internal/contract).
type Event = contract.Event

// StreamAppend is one stream's part of Store.AppendManyTx: the events to
// append to StreamID after checking Expected. It is declared with the
// store/dialect contract (internal/contract).
type StreamAppend = contract.StreamAppend

// AppendManyError is Store.AppendManyTx's failure: Index names the
// element that failed, Err is what AppendTx would have returned for it
// (errors.Is and errors.As see through it, e.g. to
// *WrongExpectedVersionError or ErrDuplicateEventID).
type AppendManyError = contract.AppendManyError

// ExpectedVersion states what the appender expects of a stream's current
// version. Use Any, NoStream, StreamExists or Exact. Its String method
// renders it as esctl accepts it; Satisfied(current) reports whether a
// stream at version current (0: no stream) meets it.
type ExpectedVersion = contract.ExpectedVersion

const (
	// Any appends whatever the stream's version is.
	Any = contract.ExpectAny
	// NoStream requires that the stream has no events yet.
	NoStream = contract.ExpectNoStream
	// StreamExists requires that the stream has at least one event.
	StreamExists = contract.ExpectStreamExists
)

// Exact requires that the stream's current version is exactly v. Exact(0)
// is the same as NoStream.
func Exact(v int64) ExpectedVersion {
	if v < 0 {
		panic(fmt.Sprintf("eventfold.Exact: negative version %d", v))
	}
	return ExpectedVersion(v)
}

// ParseExpectedVersion parses "any", "no-stream", "exists" or a version
// number >= 0.
func ParseExpectedVersion(s string) (ExpectedVersion, error) {
	switch s {
	case "any", "":
		return Any, nil
	case "no-stream":
		return NoStream, nil
	case "exists":
		return StreamExists, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, &ValidationError{Field: "expected version", Reason: fmt.Sprintf("%q is not any, no-stream, exists or a version number >= 0", s)}
	}
	return ExpectedVersion(v), nil
}

// validExpected tells whether e is one of the special values or a version.
func validExpected(e ExpectedVersion) bool { return e >= StreamExists }
