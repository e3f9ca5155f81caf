package sse_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
)

// TestRunLifecycle: one Run at a time, and when Run stops the open streams
// end (instead of idling on heartbeats forever) and new ones get 503.
func TestRunLifecycle(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	h := sse.New(store, &sse.Config{
		Heartbeat: 50 * time.Millisecond,
		Tail:      listener.Options{PollInterval: 20 * time.Millisecond},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	srv := httptest.NewServer(h)
	defer srv.Close()
	waitReady(t, srv.URL)
	if err := h.Run(context.Background()); err == nil {
		t.Fatal("a second Run while one runs returned nil")
	}

	resp, err := http.Get(srv.URL)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %v %v", resp, err)
	}
	defer resp.Body.Close() // before srv.Close, which would wait for a stream that never ends
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the client's stream did not end after Run stopped")
	}
	resp.Body.Close()
	resp, err = http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET after Run stopped: status %d, want 503", resp.StatusCode)
	}
}
