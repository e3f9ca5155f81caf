package eventfold

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// EventData is an event to append: what a command handler produces.
type EventData struct {
	// ID identifies the event. Optional: when empty a time-ordered UUID
	// (version 7) is generated. Appending an ID that already exists fails
	// with ErrDuplicateEventID.
	ID string
	// Type names the event, e.g. "AccountOpened". Required, at most
	// MaxTypeLength bytes.
	Type string
	// Data is the event payload as JSON. Required; must be valid JSON.
	Data json.RawMessage
	// Metadata is optional JSON: correlation id, causation id and anything
	// the caller adds. When set it must be a JSON object.
	Metadata json.RawMessage
}

// Event is an event recorded in the log.
type Event struct {
	// GlobalPosition orders the whole log; see the package documentation.
	GlobalPosition int64 `json:"global_position"`
	// StreamID is the stream the event belongs to.
	StreamID string `json:"stream_id"`
	// StreamVersion is the event's version in its stream, starting at 1.
	StreamVersion int64 `json:"stream_version"`
	// ID is the event's unique id (a UUID).
	ID string `json:"id"`
	// Type names the event.
	Type string `json:"type"`
	// Data is the JSON payload as the database stores it, the same bytes
	// for every reader and for the appender (PostgreSQL's jsonb normalises
	// duplicate keys, key order, whitespace and numbers; MariaDB compacts).
	Data json.RawMessage `json:"data"`
	// Metadata is a JSON object; "{}" when the event was appended without.
	Metadata json.RawMessage `json:"metadata"`
	// RecordedAt is when the database recorded the event (UTC).
	RecordedAt time.Time `json:"recorded_at"`
}

// ExpectedVersion states what the appender expects of a stream's current
// version. Use Any, NoStream, StreamExists or Exact.
type ExpectedVersion int64

const (
	// Any appends whatever the stream's version is.
	Any ExpectedVersion = -1
	// NoStream requires that the stream has no events yet.
	NoStream ExpectedVersion = -2
	// StreamExists requires that the stream has at least one event.
	StreamExists ExpectedVersion = -3
)

// Exact requires that the stream's current version is exactly v. Exact(0)
// is the same as NoStream.
func Exact(v int64) ExpectedVersion {
	if v < 0 {
		panic(fmt.Sprintf("eventfold.Exact: negative version %d", v))
	}
	return ExpectedVersion(v)
}

// String renders the expected version as esctl accepts it.
func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no-stream"
	case e == StreamExists:
		return "exists"
	case e >= 0:
		return strconv.FormatInt(int64(e), 10)
	default:
		return fmt.Sprintf("invalid(%d)", int64(e))
	}
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

// Satisfied reports whether a stream at version current (0: no stream)
// meets the expectation.
func (e ExpectedVersion) Satisfied(current int64) bool {
	switch e {
	case Any:
		return true
	case NoStream:
		return current == 0
	case StreamExists:
		return current > 0
	default:
		return int64(e) == current
	}
}

func (e ExpectedVersion) valid() bool { return e >= StreamExists }
