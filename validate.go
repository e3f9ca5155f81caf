package eventfold

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	// MaxStreamIDLength is the longest stream id, in bytes.
	MaxStreamIDLength = 200
	// MaxTypeLength is the longest event type, in bytes.
	MaxTypeLength = 200
	// DefaultMaxEventSize is the default limit on len(Data)+len(Metadata).
	DefaultMaxEventSize = 1 << 20
	// MaxEventsPerAppend is the most events one Append may carry.
	MaxEventsPerAppend = 10000
)

// Limits bound what an append accepts.
type Limits struct {
	// MaxEventSize bounds len(Data)+len(Metadata) of one event, in bytes.
	// Defaults to DefaultMaxEventSize (1 MiB).
	MaxEventSize int
}

func (l Limits) withDefaults() Limits {
	if l.MaxEventSize <= 0 {
		l.MaxEventSize = DefaultMaxEventSize
	}
	return l
}

// ValidateStreamID reports whether id is a usable stream id. Besides the
// length and encoding rules, it must not end with a space: SQL Server and
// MariaDB (PAD SPACE collations) compare "a" and "a " as equal, so such ids
// would not mean the same stream on every database.
func ValidateStreamID(id string) error {
	if err := validateName("stream id", id, MaxStreamIDLength); err != nil {
		return err
	}
	if strings.HasSuffix(id, " ") {
		return &ValidationError{Field: "stream id", Reason: fmt.Sprintf("%q ends with a space, which some databases ignore in comparisons", id)}
	}
	return nil
}

func validateName(field, s string, max int) error {
	switch {
	case s == "":
		return &ValidationError{Field: field, Reason: "must not be empty"}
	case len(s) > max:
		return &ValidationError{Field: field, Reason: fmt.Sprintf("is %d bytes long, the limit is %d", len(s), max)}
	case !utf8.ValidString(s):
		return &ValidationError{Field: field, Reason: "is not valid UTF-8"}
	case bytes.ContainsAny([]byte(s), "\x00"):
		return &ValidationError{Field: field, Reason: "contains a NUL byte"}
	}
	return nil
}

// prepareAppend validates an append and returns the events to write, each
// with an ID and a metadata object. It never modifies the caller's slice.
func prepareAppend(streamID string, expected ExpectedVersion, events []EventData, limits Limits) ([]EventData, error) {
	if err := ValidateStreamID(streamID); err != nil {
		return nil, err
	}
	if !expected.valid() {
		return nil, &ValidationError{Field: "expected version", Reason: fmt.Sprintf("%d is not Any, NoStream, StreamExists or a version >= 0", int64(expected))}
	}
	if len(events) == 0 {
		return nil, &ValidationError{Field: "events", Reason: "an append needs at least one event"}
	}
	if len(events) > MaxEventsPerAppend {
		return nil, &ValidationError{Field: "events", Reason: fmt.Sprintf("%d events in one append, the limit is %d", len(events), MaxEventsPerAppend)}
	}
	out := make([]EventData, len(events))
	seen := make(map[string]struct{}, len(events))
	for i, e := range events {
		field := func(f string) string { return fmt.Sprintf("event %d %s", i, f) }
		if err := validateName(field("type"), e.Type, MaxTypeLength); err != nil {
			return nil, err
		}
		if len(e.Data) == 0 {
			return nil, &ValidationError{Field: field("data"), Reason: "must not be empty (use {} or null for no payload)"}
		}
		if !json.Valid(e.Data) {
			return nil, &ValidationError{Field: field("data"), Reason: "is not valid JSON"}
		}
		if len(e.Metadata) == 0 {
			e.Metadata = json.RawMessage(`{}`)
		} else if !json.Valid(e.Metadata) {
			return nil, &ValidationError{Field: field("metadata"), Reason: "is not valid JSON"}
		} else if b := bytes.TrimSpace(e.Metadata); len(b) == 0 || b[0] != '{' {
			return nil, &ValidationError{Field: field("metadata"), Reason: "must be a JSON object"}
		}
		if size := len(e.Data) + len(e.Metadata); size > limits.MaxEventSize {
			return nil, &ValidationError{Field: field("size"), Reason: fmt.Sprintf("data and metadata are %d bytes, the limit is %d", size, limits.MaxEventSize)}
		}
		if e.ID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return nil, fmt.Errorf("eventfold: generate event id: %w", err)
			}
			e.ID = id.String()
		} else {
			id, err := uuid.Parse(e.ID)
			if err != nil {
				return nil, &ValidationError{Field: field("id"), Reason: fmt.Sprintf("%q is not a UUID", e.ID)}
			}
			e.ID = id.String() // canonical lower-case form on every database
		}
		if _, dup := seen[e.ID]; dup {
			return nil, &ValidationError{Field: field("id"), Reason: fmt.Sprintf("%s appears twice in one append", e.ID)}
		}
		seen[e.ID] = struct{}{}
		out[i] = e
	}
	return out, nil
}
