package eventfold

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
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

// ValidateStreamID reports whether id is a usable stream id: see
// ValidateIdentifier for the rules, which are the same for every identifier
// on every database.
func ValidateStreamID(id string) error {
	return ValidateIdentifier("stream id", id, MaxStreamIDLength)
}

// MaxIdentifierLength is the longest identifier of any kind (stream id,
// event type, command id, subscription name, lease owner), in bytes: every
// identifier column of every dialect holds 200 bytes.
const MaxIdentifierLength = 200

// ValidateIdentifier reports whether s is usable as an identifier (a stream
// id, event type, command id, subscription name, lease owner ...) named
// field in the error, at most max bytes long (MaxIdentifierLength when max
// <= 0). The rules are one set, the same on every database, checked before
// any SQL runs, so that an identifier is either refused everywhere or stored
// and compared byte for byte everywhere:
//   - 1 to max bytes of valid UTF-8 (no encoded surrogates, no overlong
//     forms): PostgreSQL and MariaDB refuse invalid UTF-8 with a raw error,
//     MariaDB may store it mangled;
//   - no control characters (C0 and C1, NUL, tab and newline included),
//     no format characters (zero-width space and joiners, the byte-order
//     mark, bidirectional overrides) and no line or paragraph separators:
//     they are invisible in logs and in esctl's output, so two identifiers
//     an operator cannot tell apart would name different things;
//   - no white space at the start or the end (and so not only white space):
//     databases that pad ("a" = "a ") or trim would not mean the same thing
//     as those that do not, and such identifiers are almost always a
//     copy-and-paste accident.
//
// Letters are compared exactly: case and Unicode normalisation (NFC versus
// NFD) make different identifiers, on every database. A refusal is a
// *ValidationError (errors.Is ErrInvalidInput).
func ValidateIdentifier(field, s string, max int) error {
	if max <= 0 {
		max = MaxIdentifierLength
	}
	switch {
	case s == "":
		return &ValidationError{Field: field, Reason: "must not be empty"}
	case len(s) > max:
		return &ValidationError{Field: field, Reason: fmt.Sprintf("is %d bytes long, the limit is %d", len(s), max)}
	case !utf8.ValidString(s):
		return &ValidationError{Field: field, Reason: fmt.Sprintf("is not valid UTF-8: %q", s)}
	}
	for i, r := range s {
		switch {
		case r == 0:
			return &ValidationError{Field: field, Reason: fmt.Sprintf("contains a NUL character at byte %d: %q", i, s)}
		case unicode.IsControl(r):
			return &ValidationError{Field: field, Reason: fmt.Sprintf("contains the control character %U at byte %d: %q", r, i, s)}
		case unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp):
			return &ValidationError{Field: field, Reason: fmt.Sprintf("contains the invisible character %U at byte %d: %q", r, i, s)}
		}
	}
	if strings.TrimSpace(s) == "" {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("is only white space: %q", s)}
	}
	if first, _ := utf8.DecodeRuneInString(s); unicode.IsSpace(first) {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("starts with white space: %q", s)}
	}
	if last, _ := utf8.DecodeLastRuneInString(s); unicode.IsSpace(last) {
		return &ValidationError{Field: field, Reason: fmt.Sprintf("ends with white space, which some databases ignore in comparisons: %q", s)}
	}
	return nil
}

// MaxJSONDepth is how deeply arrays and objects may nest in event data and
// metadata: `1` has depth 0, `{"a":[1]}` depth 2. Measured through Append
// (2026-12): MariaDB 10.11 refuses depth 30 (its JSON functions stop at
// 32 levels, and the append procedure wraps each event in two more),
// SQLite accepts 1,000, PostgreSQL 10,000, MySQL 8 documents 100 and SQL
// Server 128. 20 leaves room for a wrapper a future procedure may add.
const MaxJSONDepth = 20

// ValidateJSON reports whether payload is JSON that every database stores
// as sent, with field naming it in the error. Besides being valid JSON
// (RFC 8259) it must be valid UTF-8 throughout, its strings (object keys
// included) must not hold the escape \u0000 (PostgreSQL's jsonb cannot
// store it, the other databases do) nor a lone UTF-16 surrogate escape such
// as \ud800 (PostgreSQL and MariaDB refuse it, SQLite stores it), and it
// must not nest deeper than MaxJSONDepth. A refusal is a *ValidationError
// (errors.Is ErrInvalidInput).
func ValidateJSON(field string, payload []byte) error {
	if !utf8.Valid(payload) {
		return &ValidationError{Field: field, Reason: "is not valid UTF-8"}
	}
	if !json.Valid(payload) {
		return &ValidationError{Field: field, Reason: "is not valid JSON"}
	}
	depth := 0
	for i := 0; i < len(payload); i++ {
		switch payload[i] {
		case '[', '{':
			depth++
			if depth > MaxJSONDepth {
				return &ValidationError{Field: field, Reason: fmt.Sprintf("nests arrays and objects deeper than %d levels", MaxJSONDepth)}
			}
		case ']', '}':
			depth--
		case '"':
			end, err := scanJSONString(payload, i+1)
			if err != "" {
				return &ValidationError{Field: field, Reason: err}
			}
			i = end
		}
	}
	return nil
}

const loneSurrogate = "holds a lone UTF-16 surrogate escape (\\uD800-\\uDBFF must be followed by \\uDC00-\\uDFFF, which must not stand alone)"

// scanJSONString checks the string whose contents start at b[i] (after the
// opening quote) of a document json.Valid accepted, and returns the index
// of its closing quote, or a reason to refuse it. It jumps from escape to
// escape with bytes.IndexByte, so a long string without escapes costs
// little more than a memchr.
func scanJSONString(b []byte, i int) (int, string) {
	high := false // the previous character was a high surrogate escape
	for {
		q := bytes.IndexByte(b[i:], '"') // the closing quote, unless escaped
		if q < 0 {
			return len(b), "" // unreachable for valid JSON
		}
		e := bytes.IndexByte(b[i:i+q], '\\')
		if e < 0 { // no more escapes: the string ends at q
			if high {
				return i + q, loneSurrogate
			}
			return i + q, ""
		}
		if high && e > 0 { // a plain character after a high surrogate
			return i + e, loneSurrogate
		}
		i += e // the backslash; json.Valid: its escape is complete
		if b[i+1] != 'u' {
			if high {
				return i, loneSurrogate
			}
			i += 2
			continue
		}
		v := hex4(b[i+2 : i+6])
		i += 6
		switch {
		case v == 0:
			return i, "holds the escape \\u0000 (a NUL character), which PostgreSQL cannot store"
		case v >= 0xD800 && v <= 0xDBFF:
			if high {
				return i, loneSurrogate
			}
			high = true
		case v >= 0xDC00 && v <= 0xDFFF:
			if !high {
				return i, loneSurrogate
			}
			high = false
		case high:
			return i, loneSurrogate
		}
	}
}

// hex4 decodes four hex digits that json.Valid has checked.
func hex4(h []byte) rune {
	var v rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		v = v<<4 | rune(c)
	}
	return v
}

// prepareAppend validates an append and returns the events to write, each
// with an ID and a metadata object. It never modifies the caller's slice.
func prepareAppend(streamID string, expected ExpectedVersion, events []EventData, limits Limits) ([]EventData, error) {
	if err := ValidateStreamID(streamID); err != nil {
		return nil, err
	}
	if !validExpected(expected) {
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
		if err := ValidateIdentifier(field("type"), e.Type, MaxTypeLength); err != nil {
			return nil, err
		}
		if len(e.Data) == 0 {
			return nil, &ValidationError{Field: field("data"), Reason: "must not be empty (use {} or null for no payload)"}
		}
		if err := ValidateJSON(field("data"), e.Data); err != nil {
			return nil, err
		}
		if len(e.Metadata) == 0 {
			e.Metadata = json.RawMessage(`{}`)
		} else if err := ValidateJSON(field("metadata"), e.Metadata); err != nil {
			return nil, err
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
