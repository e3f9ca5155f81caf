package natsrelay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

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
		ev.Metadata = json.RawMessage(md)
	}
	return ev, nil
}

// positionOf reads the relay's position header of a stored message; ok is
// false when the message has none (it was not published by a relay).
func positionOf(h nats.Header) (int64, bool) {
	p, err := strconv.ParseInt(h.Get(HeaderPosition), 10, 64)
	return p, err == nil && p > 0
}
