package natsrelay

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// referenceMessage is message as it was before it was made cheaper
// (nats.NewMsg, a map decode of every metadata): the headers of both must
// stay the same.
func referenceMessage(subject string, ev eventfold.Event) *nats.Msg {
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
			var b bytes.Buffer
			if json.Compact(&b, ev.Metadata) == nil {
				h.Set(HeaderMetadata, b.String())
			}
			set := func(key string, v any) {
				s, ok := v.(string)
				if !ok || s == "" || strings.IndexFunc(s, unicode.IsControl) >= 0 {
					return
				}
				h.Set(key, s)
			}
			set(HeaderCorrelationID, md["correlation_id"])
			set(HeaderCausationID, md["causation_id"])
			set(HeaderTraceParent, md["traceparent"])
			set(HeaderTraceState, md["tracestate"])
		}
	}
	return m
}

// TestMessageHeadersAsBefore: the headers message builds are those of the
// reference, for metadata with and without the copied keys, escaped key
// names, keys in another case, non-string and control-character values,
// and metadata that is not an object.
func TestMessageHeadersAsBefore(t *testing.T) {
	base := eventfold.Event{ID: "0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10", GlobalPosition: 1 << 40, StreamID: "acct-1.2 x", StreamVersion: 7,
		Type: "Money Moved>", Data: json.RawMessage(`{"a":1}`), RecordedAt: time.Date(2026, 12, 1, 17, 0, 0, 123456789, time.FixedZone("X", 3600))}
	for _, md := range []string{
		``, `{}`, ` { } `, `{"a": 1}`, `null`, `[1, 2]`, `"str"`, `12`, `{"a":`,
		`{"correlation_id": "corr", "causation_id": "cause", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"}`,
		`{"correlation_id": "", "causation_id": "a\nb", "traceparent": 1, "tracestate": {"x": "y"}}`,
		`{"Correlation_ID": "other case", "TRACEPARENT": "x"}`,
		`{"correlation\u005fid": "escaped name", "\u0074raceparent": "tp"}`,
		`{"user_id": "u-1", "nested": {"correlation_id": "inner"}}`,
		`{"correlation_id": "first", "correlation_id": "last"}`,
		`[{"traceparent": "in an array"}]`,
		`{"k": "v\u2028w", "correlation_id": "c\u0000"}`,
	} {
		ev := base
		ev.Metadata = json.RawMessage(md)
		want := referenceMessage("s.x", ev)
		got := message("s.x", ev)
		require.Equal(t, want.Header, got.Header, "metadata %s", md)
		require.Equal(t, want.Subject, got.Subject)
		require.Equal(t, want.Data, got.Data)
	}
}

// TestHeaderValuesIndependent: the header values share a backing array;
// setting a header afterwards (the publish adds its expectations) must not
// overwrite another one.
func TestHeaderValuesIndependent(t *testing.T) {
	m := message("s.x", eventfold.Event{ID: "id", GlobalPosition: 5, StreamID: "s", StreamVersion: 1, Type: "T", Metadata: json.RawMessage(`{}`)})
	m.Header.Add(HeaderEventID, "second")
	m.Header.Set(jetstream.ExpectedLastSeqHeader, "9")
	require.Equal(t, []string{"id", "second"}, m.Header.Values(HeaderEventID))
	require.Equal(t, "5", m.Header.Get(HeaderPosition))
	require.Equal(t, "s", m.Header.Get(HeaderStreamID))
	require.Equal(t, "{}", m.Header.Get(HeaderMetadata))
}

// BenchmarkMessage: the cost of one message, with typical metadata, old
// (reference) and new. go test -run XXX -bench Message -benchmem.
func BenchmarkMessage(b *testing.B) {
	ev := eventfold.Event{ID: "0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10", GlobalPosition: 1 << 40, StreamID: "acct-42", StreamVersion: 7,
		Type: "Deposited", Data: json.RawMessage(`{"amount":100}`), RecordedAt: time.Now(),
		Metadata: json.RawMessage(`{"correlation_id": "c-1", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`)}
	empty := ev
	empty.Metadata = json.RawMessage(`{}`)
	for _, c := range []struct {
		name string
		ev   eventfold.Event
		fn   func(string, eventfold.Event) *nats.Msg
	}{{"reference/metadata", ev, referenceMessage}, {"new/metadata", ev, message}, {"reference/empty", empty, referenceMessage}, {"new/empty", empty, message}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				subj, _ := DefaultSubject("bank", c.ev)
				_ = c.fn(subj, c.ev)
			}
		})
	}
}
