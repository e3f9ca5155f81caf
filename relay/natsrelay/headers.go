package natsrelay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventfold/eventfold"
)

// Headers the relay sets on every message. The body is the event's data.
const (
	HeaderPosition      = "Eventfold-Position"
	HeaderStreamID      = "Eventfold-Stream-Id"
	HeaderStreamVersion = "Eventfold-Stream-Version"
	HeaderEventID       = "Eventfold-Event-Id"
	HeaderEventType     = "Eventfold-Event-Type"
	HeaderRecordedAt    = "Eventfold-Recorded-At" // RFC 3339, nanoseconds, UTC
	HeaderMetadata      = "Eventfold-Metadata"    // the metadata JSON object, compacted
	HeaderCorrelationID = "Eventfold-Correlation-Id"
	HeaderCausationID   = "Eventfold-Causation-Id"
	// HeaderTraceParent and HeaderTraceState carry W3C trace context, taken
	// from the metadata keys "traceparent" and "tracestate".
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// message builds the NATS message of one event. The header values share
// one backing array, and metadata is parsed only when it may hold one of
// the keys copied into headers: the relay builds one message per event.
func message(subject string, ev eventfold.Event) *nats.Msg {
	h := make(nats.Header, 14) // room for the two expectation headers the publish adds
	vals := make([]string, 0, 11)
	set := func(k, v string) {
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(jetstream.MsgIDHeader, ev.ID)
	set(HeaderPosition, strconv.FormatInt(ev.GlobalPosition, 10))
	set(HeaderStreamID, ev.StreamID)
	set(HeaderStreamVersion, strconv.FormatInt(ev.StreamVersion, 10))
	set(HeaderEventID, ev.ID)
	set(HeaderEventType, ev.Type)
	set(HeaderRecordedAt, ev.RecordedAt.UTC().Format(time.RFC3339Nano))
	if md := ev.Metadata; len(md) > 0 {
		if isEmptyObject(md) {
			set(HeaderMetadata, "{}")
		} else if compact, fields, ok := parseMetadata(md); ok {
			// Compact JSON has no raw line breaks: safe as a header value.
			set(HeaderMetadata, compact)
			for i, key := range metadataHeaders {
				if s := fields[i]; s != "" {
					set(key, s)
				}
			}
		}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: ev.Data}
}

// metadataHeaders are the headers copied from the metadata keys
// metadataKeys.
var (
	metadataHeaders = [...]string{HeaderCorrelationID, HeaderCausationID, HeaderTraceParent, HeaderTraceState}
	metadataKeys    = [...]string{"correlation_id", "causation_id", "traceparent", "tracestate"}
)

// isEmptyObject reports whether md is "{}" with optional white space.
func isEmptyObject(md []byte) bool {
	md = bytes.TrimSpace(md)
	if len(md) < 2 || md[0] != '{' || md[len(md)-1] != '}' {
		return false
	}
	return len(bytes.TrimSpace(md[1:len(md)-1])) == 0
}

// parseMetadata returns metadata compacted and the header values of
// metadataHeaders ("" where the key is absent, not a string, or a value a
// header cannot carry). ok is false when metadata is not valid JSON or
// (unless null) not an object: then it is not relayed in headers at all.
func parseMetadata(md []byte) (compact string, fields [len(metadataHeaders)]string, ok bool) {
	var b bytes.Buffer
	b.Grow(len(md))
	if json.Compact(&b, md) != nil {
		return "", fields, false
	}
	// The scan for the keys' names (or an escape that could spell one)
	// spares the decoding of metadata that has none of them.
	if c := b.Bytes(); bytes.Contains(c, []byte(`_id"`)) || bytes.Contains(c, []byte(`"trace`)) || bytes.Contains(c, []byte(`\u`)) {
		var m map[string]any
		if json.Unmarshal(c, &m) != nil {
			return "", fields, false
		}
		for i, key := range metadataKeys {
			fields[i] = headerString(m[key])
		}
	} else if c[0] != '{' && !bytes.Equal(c, []byte("null")) {
		return "", fields, false
	}
	return b.String(), fields, true
}

// headerString returns v when it is a non-empty string a header can carry
// (no control characters: a line break would split the header block), ""
// otherwise.
func headerString(v any) string {
	s, ok := v.(string)
	if !ok || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return ""
	}
	return s
}

// DecodeEvent rebuilds the eventfold.Event a relay published from a message's
// headers and body. It fails (matching eventfold.ErrInvalidInput) for a
// message that does not carry the relay's headers.
func DecodeEvent(header nats.Header, data []byte) (eventfold.Event, error) {
	var ev eventfold.Event
	var err error
	bad := func(field, why string) (eventfold.Event, error) {
		return eventfold.Event{}, &eventfold.ValidationError{Field: "message header " + field, Reason: why}
	}
	pos := header.Get(HeaderPosition)
	if ev.GlobalPosition, err = strconv.ParseInt(pos, 10, 64); err != nil || ev.GlobalPosition <= 0 {
		return bad(HeaderPosition, fmt.Sprintf("%q is not a position", pos))
	}
	ver := header.Get(HeaderStreamVersion)
	if ev.StreamVersion, err = strconv.ParseInt(ver, 10, 64); err != nil || ev.StreamVersion <= 0 {
		return bad(HeaderStreamVersion, fmt.Sprintf("%q is not a version", ver))
	}
	if ev.StreamID = header.Get(HeaderStreamID); ev.StreamID == "" {
		return bad(HeaderStreamID, "missing")
	}
	if ev.ID = header.Get(HeaderEventID); ev.ID == "" {
		return bad(HeaderEventID, "missing")
	}
	if ev.Type = header.Get(HeaderEventType); ev.Type == "" {
		return bad(HeaderEventType, "missing")
	}
	at := header.Get(HeaderRecordedAt)
	if ev.RecordedAt, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return bad(HeaderRecordedAt, fmt.Sprintf("%q is not an RFC 3339 time", at))
	}
	ev.Data = append(json.RawMessage(nil), data...)
	ev.Metadata = json.RawMessage("{}")
	if md := header.Get(HeaderMetadata); md != "" {
		// Event.Metadata is a JSON object: a forged header must not
		// become a RawMessage that breaks json.Marshal in the handler.
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(md), &obj) != nil || obj == nil {
			return bad(HeaderMetadata, fmt.Sprintf("%.80q is not a JSON object", md))
		}
		ev.Metadata = json.RawMessage(md)
	}
	return ev, nil
}

// checkMessage refuses a message the relay must not publish: one whose
// stream id or type a header cannot carry intact (a line break becomes a
// space, white space at either end is trimmed: the consumer would decode
// another stream id), and one over the server's max_payload (NATS refuses
// it on every attempt). The library refuses such identifiers and sizes at
// append, but a DBA's script calling the database's append function
// directly, or a data limit raised above max_payload, can store them.
// Both errors match eventfold.ErrInvalidInput: the relay stops rather than
// skip the event or retry for ever.
func checkMessage(m *nats.Msg, ev eventfold.Event, stream string, maxPayload int64) error {
	where := fmt.Sprintf("the event at position %d (%q in stream %q)", ev.GlobalPosition, ev.Type, ev.StreamID)
	for _, f := range []struct{ field, v string }{{"stream id", ev.StreamID}, {"event type", ev.Type}} {
		if !headerSafe(f.v) {
			return &eventfold.ValidationError{Field: "natsrelay: " + f.field + " of " + where,
				Reason: "has a control character or white space at either end, which a NATS header cannot carry; the relay stops rather than publish another value (fix the event in the database, or relay it yourself)"}
		}
	}
	if maxPayload <= 0 {
		return nil
	}
	// What nats.go sends: "NATS/1.0\r\n", "Key: value\r\n" per value,
	// "\r\n", the body; plus the two expectation headers Publish adds.
	size := len("NATS/1.0\r\n\r\n") + len(m.Data) +
		len(jetstream.ExpectedStreamHeader+": \r\n") + len(stream) +
		len(jetstream.ExpectedLastSeqHeader+": \r\n") + 20
	for k, vs := range m.Header {
		for _, v := range vs {
			size += len(k) + len(": \r\n") + len(v)
		}
	}
	if int64(size) > maxPayload {
		return &eventfold.ValidationError{Field: "natsrelay: " + where,
			Reason: fmt.Sprintf("makes a %d-byte NATS message (data, plus the metadata again in a header), over the server's max_payload of %d bytes; raise max_payload in the NATS server configuration (up to 64 MB) and restart the relay, which never skips an event", size, maxPayload)}
	}
	return nil
}

// headerSafe reports whether a header value comes back unchanged: no
// control character, no white space at either end.
func headerSafe(s string) bool {
	if s == "" || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return false
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	return !unicode.IsSpace(first) && !unicode.IsSpace(last)
}

// positionOf reads the relay's position header of a stored message; ok is
// false when the message has none (it was not published by a relay).
func positionOf(h nats.Header) (int64, bool) {
	p, err := strconv.ParseInt(h.Get(HeaderPosition), 10, 64)
	return p, err == nil && p > 0
}
