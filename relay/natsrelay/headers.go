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

// message builds the NATS message of one event.
func message(subject string, ev eventfold.Event) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = ev.Data
	h := m.Header
	h.Set(jetstream.MsgIDHeader, ev.ID)
	h.Set(HeaderPosition, strconv.FormatInt(ev.GlobalPosition, 10))
	h.Set(HeaderStreamID, ev.StreamID)
	h.Set(HeaderStreamVersion, strconv.FormatInt(ev.StreamVersion, 10))
	h.Set(HeaderEventID, ev.ID)
	h.Set(HeaderEventType, ev.Type)
	h.Set(HeaderRecordedAt, ev.RecordedAt.UTC().Format(time.RFC3339Nano))
	if len(ev.Metadata) > 0 {
		var md map[string]any
		if json.Unmarshal(ev.Metadata, &md) == nil {
			// Compact JSON has no raw line breaks: safe as a header value.
			var b bytes.Buffer
			if json.Compact(&b, ev.Metadata) == nil {
				h.Set(HeaderMetadata, b.String())
			}
			setString(h, HeaderCorrelationID, md["correlation_id"])
			setString(h, HeaderCausationID, md["causation_id"])
			setString(h, HeaderTraceParent, md["traceparent"])
			setString(h, HeaderTraceState, md["tracestate"])
		}
	}
	return m
}

// setString sets a header from a metadata value when it is a non-empty
// string a header can carry (no control characters: a line break would
// split the header block).
func setString(h nats.Header, key string, v any) {
	s, ok := v.(string)
	if !ok || s == "" || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return
	}
	h.Set(key, s)
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
