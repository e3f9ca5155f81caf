package sse_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
)

// TestSlowClient: a client that never reads cannot stall the others; it is
// disconnected once a write times out, while a reading client receives
// every event.
func TestSlowClient(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := listener.NewSignal()
	h := sse.New(store, &sse.Config{
		Buffer: 64, WriteTimeout: 300 * time.Millisecond, Heartbeat: time.Second,
		Tail:   listener.Options{Wakeup: sig, PollInterval: 20 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = h.Run(ctx) })
	srv := httptest.NewServer(h)
	defer srv.Close()
	waitReady(t, srv.URL)

	// The slow client: sends its request, never reads.
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-User: slow\r\n\r\n")
	resp, msgs := connect(t, ctx, srv.URL, "fast", "")
	defer resp.Body.Close()
	waitFor(t, 5*time.Second, "two clients", func() bool { return h.Clients() == 2 })

	payload := []byte(`"` + strings.Repeat("x", 32<<10) + `"`)
	const n = 1000 // 32 MB in all: more than the socket buffers hold
	wg.Go(func() {
		for i := 0; i < n; i += 10 {
			evs := make([]eventfold.EventData, 10)
			for j := range evs {
				evs[j] = eventfold.EventData{Type: "Big", Data: payload}
			}
			if _, err := store.Append(ctx, "big", eventfold.Any, evs...); err != nil {
				t.Error(err)
				return
			}
			sig.Broadcast()
		}
	})
	got := 0
	deadline := time.After(60 * time.Second)
	for got < n {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("fast client's stream closed after %d events", got)
			}
			if m.data != "" {
				got++
			}
		case <-deadline:
			t.Fatalf("fast client got %d of %d events", got, n)
		}
	}
	waitFor(t, 10*time.Second, "the slow client to be dropped", func() bool { return h.Clients() == 1 })
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
