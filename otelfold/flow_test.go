package otelfold_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/otelfold"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestTraceFromPostToSubscriberAndSSE follows one request: a POST with a
// client's traceparent, the dispatch, a durable subscription's handler and
// an SSE delivery all share the client's trace. The subscription's
// metrics move on the way: lease held, handler duration, lag.
func TestTraceFromPostToSubscriberAndSSE(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	ctx, cancel := context.WithCancel(b.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	reg, err := otelfold.ObserveLag(b.inst, b.store)
	require.NoError(t, err)
	defer reg.Unregister()

	// Lag before the subscription ran: one event behind.
	_, err = b.dispatch(t, touch{Stream: "before"})
	require.NoError(t, err)
	require.NoError(t, listener.SetCheckpoint(b.ctx, b.store, "mailer", 0))
	sub := attribute.String("messaging.consumer.group.name", "mailer")
	require.Greater(t, b.sum(t, "eventfold.subscription.lag", sub, attribute.String("eventfold.lag.unit", "events")), int64(0))

	sig := listener.NewSignal()
	handled := make(chan trace.SpanContext, 10)
	s, err := listener.New(b.store, "mailer", func(ctx context.Context, ev eventfold.Event) error {
		if ev.StreamID == "traced" {
			handled <- trace.SpanContextFromContext(ctx)
		}
		return nil
	}, &listener.Options{Observer: b.inst, Wakeup: sig, PollInterval: 20 * time.Millisecond, Logger: quiet})
	require.NoError(t, err)
	wg.Go(func() { _ = s.Run(ctx) })
	waitFor(t, 10*time.Second, "the lease", func() bool { return b.sum(t, "eventfold.subscription.lease.held", sub) == 1 })

	events := sse.New(b.store, &sse.Config{Observer: b.inst, Logger: quiet, Tail: listener.Options{Wakeup: sig, PollInterval: 20 * time.Millisecond}})
	wg.Go(func() { _ = events.Run(ctx) })
	mux := http.NewServeMux()
	mux.Handle("POST /commands/{name}", b.inst.HTTP(httpapi.New(b.o, nil)))
	mux.Handle("GET /events", b.inst.HTTP(events))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	waitFor(t, 10*time.Second, "the event stream", func() bool {
		resp, err := http.Head(srv.URL + "/events")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events?stream=traced", nil)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	lines := make(chan string, 100)
	wg.Go(func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	})
	waitFor(t, 5*time.Second, "the SSE client", func() bool { return b.sum(t, "eventfold.sse.clients") == 1 })

	// The client's own trace.
	const clientTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	post, _ := http.NewRequest(http.MethodPost, srv.URL+"/commands/Touch", strings.NewReader(`{"stream":"traced"}`))
	post.Header.Set("Content-Type", "application/json")
	post.Header.Set("traceparent", "00-"+clientTrace+"-00f067aa0ba902b7-01")
	presp, err := http.DefaultClient.Do(post)
	require.NoError(t, err)
	presp.Body.Close()
	require.Equal(t, http.StatusCreated, presp.StatusCode)
	sig.Broadcast()

	server := b.one(t, "POST /commands/{name}")
	require.Equal(t, clientTrace, server.SpanContext().TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", server.Parent().SpanID().String())
	require.Equal(t, trace.SpanKindServer, server.SpanKind())
	var disp trace.SpanContext
	for _, d := range b.byName("dispatch Touch") {
		if d.Parent().SpanID() == server.SpanContext().SpanID() {
			disp = d.SpanContext()
		}
	}
	require.True(t, disp.IsValid(), "the dispatch span is a child of the server span")

	// The subscriber continues the trace.
	select {
	case sc := <-handled:
		require.Equal(t, clientTrace, sc.TraceID().String())
	case <-time.After(10 * time.Second):
		t.Fatal("the subscriber did not handle the event")
	}
	waitFor(t, 5*time.Second, "the process span", func() bool { return len(b.byName("process mailer")) >= 2 })
	var proc trace.SpanContext
	for _, p := range b.byName("process mailer") {
		if p.SpanContext().TraceID().String() == clientTrace {
			proc = p.SpanContext()
			require.Equal(t, b.appendSpanOf(t, clientTrace), p.Parent().SpanID(), "a child of the append span")
			require.Equal(t, trace.SpanKindConsumer, p.SpanKind())
		}
	}
	require.True(t, proc.IsValid())
	require.GreaterOrEqual(t, b.sum(t, "messaging.process.duration", sub), int64(2))

	// The SSE delivery continues it too.
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case l := <-lines:
			got = strings.HasPrefix(l, "data:")
		case <-deadline:
			t.Fatal("no SSE event")
		}
	}
	waitFor(t, 5*time.Second, "the sse send span", func() bool { return len(b.byName("sse send")) == 1 })
	send := b.one(t, "sse send")
	require.Equal(t, clientTrace, send.SpanContext().TraceID().String())
	require.Equal(t, b.appendSpanOf(t, clientTrace), send.Parent().SpanID())
	require.Equal(t, int64(1), b.sum(t, "eventfold.sse.events.sent"))

	// Caught up: no lag. Stopped: lease released; client gone: none connected.
	waitFor(t, 10*time.Second, "lag 0", func() bool { return b.sum(t, "eventfold.subscription.lag", sub) == 0 })
	resp.Body.Close()
	waitFor(t, 5*time.Second, "the SSE client to leave", func() bool { return b.sum(t, "eventfold.sse.clients") == 0 })
	require.Equal(t, int64(0), b.sum(t, "eventfold.sse.clients.dropped"), "a client that leaves is not dropped")
	cancel()
	wg.Wait()
	require.Equal(t, int64(0), b.sum(t, "eventfold.subscription.lease.held", sub))
}

// appendSpanOf returns the span id of the append in trace tid.
func (b *bundle) appendSpanOf(t *testing.T, tid string) trace.SpanID {
	t.Helper()
	for _, s := range b.byName("append") {
		if s.SpanContext().TraceID().String() == tid {
			return s.SpanContext().SpanID()
		}
	}
	t.Fatalf("no append span in trace %s", tid)
	return trace.SpanID{}
}

// TestSSEClientDropped: a client that stops reading is disconnected when a
// write times out, and counted as dropped.
func TestSSEClientDropped(t *testing.T) {
	b := setup(t, eventfold.SQLite, nil)
	ctx, cancel := context.WithCancel(b.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	sig := listener.NewSignal()
	h := sse.New(b.store, &sse.Config{Observer: b.inst, Logger: quiet, WriteTimeout: 200 * time.Millisecond,
		Tail: listener.Options{Wakeup: sig, PollInterval: 20 * time.Millisecond}})
	wg.Go(func() { _ = h.Run(ctx) })
	srv := httptest.NewServer(h)
	defer srv.Close()
	waitFor(t, 5*time.Second, "the event stream", func() bool {
		resp, err := http.Head(srv.URL)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	waitFor(t, 5*time.Second, "the client", func() bool { return b.sum(t, "eventfold.sse.clients") == 1 })
	payload := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
	for i := 0; i < 100 && b.sum(t, "eventfold.sse.clients.dropped") == 0; i++ {
		evs := make([]eventfold.EventData, 10)
		for j := range evs {
			evs[j] = eventfold.EventData{Type: "Big", Data: payload}
		}
		_, err := b.store.Append(ctx, "big", eventfold.Any, evs...)
		require.NoError(t, err)
		sig.Broadcast()
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, "the drop", func() bool { return b.sum(t, "eventfold.sse.clients.dropped") == 1 })
	require.Equal(t, int64(0), b.sum(t, "eventfold.sse.clients"))
}

// TestGroupCommitAndNotifierMetrics: concurrent dispatches under group
// commit record batch sizes above 1 and a commit span per command; a
// Notifier's wake-ups are counted as sent or coalesced.
func TestGroupCommitAndNotifierMetrics(t *testing.T) {
	b := setup(t, eventfold.Postgres, &orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1}})
	n := listener.NewNotifier(b.store, &listener.NotifierOptions{Logger: quiet})
	reg, err := b.inst.ObserveNotifier(n)
	require.NoError(t, err)
	defer reg.Unregister()
	ctx, cancel := context.WithCancel(b.ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range 16 {
		n.Notify(int64(i + 1)) // before Run: all but the first coalesce
	}
	wg.Go(func() { _ = n.Run(ctx) })
	waitFor(t, 5*time.Second, "a notification", func() bool { return b.sum(t, "eventfold.notify.sent") == 1 })
	require.Equal(t, int64(15), b.sum(t, "eventfold.notify.coalesced"))

	for round := 0; round < 20 && b.sum(t, "eventfold.group_commit.batch.size") == 0; round++ {
		var dw sync.WaitGroup
		for i := range 16 {
			dw.Go(func() {
				_, err := b.dispatch(t, touch{Stream: fmt.Sprintf("g-%d-%d", round, i)})
				require.NoError(t, err)
			})
		}
		dw.Wait()
	}
	require.Greater(t, b.sum(t, "eventfold.group_commit.batch.size"), int64(0), "a batch of several commands")
	var shared int
	for _, c := range b.byName("commit") {
		if attrs(c)[otelfold.AttrBatchSize].AsInt64() > 1 {
			shared++
		}
	}
	require.Greater(t, shared, 1, "a commit span per command of a shared transaction")
	for _, d := range b.byName("dispatch Touch") {
		require.Equal(t, otelfold.OutcomeCommitted, attrs(d)[otelfold.AttrOutcome].AsString())
	}
}
