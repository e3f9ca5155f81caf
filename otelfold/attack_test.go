package otelfold_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
)

// TestForgedTraceparentInMetadataIsReplaced: a caller's Envelope.Metadata
// "traceparent" (say, from an HTTP client's JSON) never reaches the event:
// the append's own trace context replaces it, so nobody attaches events to
// another trace.
func TestForgedTraceparentInMetadataIsReplaced(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	const forged = "00-11111111111111111111111111111111-2222222222222222-01"
	_, err := b.o.Dispatch(b.ctx, orchestrator.Command{Name: "Touch", Payload: touch{Stream: "s"},
		Envelope: orchestrator.Envelope{Metadata: map[string]any{"traceparent": forged, "tracestate": "evil=1", "user": "ada"}}})
	require.NoError(t, err)
	evs, err := b.store.ReadStream(b.ctx, "s", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	var md map[string]any
	require.NoError(t, json.Unmarshal(evs[0].Metadata, &md))
	require.NotEqual(t, forged, md["traceparent"])
	require.NotContains(t, md, "tracestate")
	require.Equal(t, "ada", md["user"], "other caller metadata stays")
	require.Contains(t, md["traceparent"], b.one(t, "append").SpanContext().TraceID().String())
}

// TestBadTraceContextInEvents: events whose metadata carries a malformed
// traceparent, or one of the wrong JSON type, or bad JSON shapes, are
// handled: the handler span starts a trace of its own.
func TestBadTraceContextInEvents(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	for i, md := range []string{
		`{"traceparent":"garbage"}`,
		`{"traceparent":42}`,
		`{"traceparent":"00-00000000000000000000000000000000-0000000000000000-01"}`,
		`{"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":7}`,
		`{"x":{"traceparent":"nested"}}`,
		`{}`,
	} {
		ev := eventfold.Event{ID: "e", StreamID: "s", Type: "T", Metadata: json.RawMessage(md), GlobalPosition: int64(i + 1)}
		ctx, end := b.inst.StartHandle(b.ctx, "sub", ev)
		sc := trace.SpanContextFromContext(ctx)
		require.True(t, sc.IsValid(), md)
		end(nil)
		endSend := b.inst.StartSend(b.ctx, []eventfold.Event{ev, ev})
		endSend(nil)
		_, end = b.inst.StartReplay(b.ctx, []eventfold.Event{ev})
		end(nil)
	}
	for _, s := range b.byName("process sub") {
		if s.Parent().IsValid() {
			require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", s.SpanContext().TraceID().String(), "only the valid traceparent (with a bad tracestate) is continued")
		}
	}
}

// TestBadTraceparentHeader: a malformed traceparent header starts a new
// trace instead of failing the request.
func TestBadTraceparentHeader(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	mux := http.NewServeMux()
	mux.Handle("POST /commands/{name}", b.inst.HTTP(httpapi.New(b.o, nil)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tp := range []string{"garbage", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", strings.Repeat("0", 5000)} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, srv.URL+"/commands/Touch", strings.NewReader(`{"stream":"h"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", tp)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusCreated, resp.StatusCode)
	}
	for _, s := range b.byName("POST /commands/{name}") {
		require.False(t, s.Parent().IsValid(), "a new trace")
	}
	require.Len(t, b.byName("POST /commands/{name}"), 3)
}
