package contract

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
// version. Use eventfold.Any, NoStream, StreamExists or Exact.
type ExpectedVersion int64

// The special expected versions; package eventfold exports them as Any,
// NoStream and StreamExists.
const (
	ExpectAny          ExpectedVersion = -1
	ExpectNoStream     ExpectedVersion = -2
	ExpectStreamExists ExpectedVersion = -3
)

// String renders the expected version as esctl accepts it.
func (e ExpectedVersion) String() string {
	switch {
	case e == ExpectAny:
		return "any"
	case e == ExpectNoStream:
		return "no-stream"
	case e == ExpectStreamExists:
		return "exists"
	case e >= 0:
		return strconv.FormatInt(int64(e), 10)
	default:
		return fmt.Sprintf("invalid(%d)", int64(e))
	}
}

// Satisfied reports whether a stream at version current (0: no stream)
// meets the expectation.
func (e ExpectedVersion) Satisfied(current int64) bool {
	switch e {
	case ExpectAny:
		return true
	case ExpectNoStream:
		return current == 0
	case ExpectStreamExists:
		return current > 0
	default:
		return int64(e) == current
	}
}

// PositionCheck is what Store.CheckPositions found and did.
type PositionCheck struct {
	// Applicable is false on dialects whose positions are a counter stored
	// with the data (SQLite, SQL Server): they survive any move, and there
	// is nothing to check.
	Applicable bool
	// Moved reports that the log holds positions the database cannot have
	// assigned, or would assign again: a PostgreSQL database restored into
	// a new cluster; on MySQL/MariaDB, AUTO_INCREMENT at or below the log
	// (TRUNCATE, ALTER TABLE, a dump into a new database).
	Moved bool
	// Repaired reports that the offset (MySQL: AUTO_INCREMENT) was raised
	// just now.
	Repaired bool
	// OldOffset and NewOffset are the position offset before and after
	// (PostgreSQL: positions are ((xid + offset) << 20) + index; MySQL:
	// the events table's AUTO_INCREMENT).
	OldOffset, NewOffset int64
	// LastPosition is the highest position the log, its archive watermark
	// or a subscription checkpoint has reached.
	LastPosition int64
	// NextPosition is the lowest position an append starting now can get.
	NextPosition int64
	// Message says the above in a sentence, for logs and esctl.
	Message string
}
