package sse_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
)

type message struct {
	id        string
	data      string
	heartbeat bool
}

// stream reads SSE messages from a response body into a channel.
func stream(body io.Reader) <-chan message {
	out := make(chan message, 1024)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(body)
		var m message
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if m.id != "" || m.data != "" || m.heartbeat {
					out <- m
				}
				m = message{}
			case strings.HasPrefix(line, ": heartbeat"):
				m.heartbeat = true
			case strings.HasPrefix(line, "id: "):
				m.id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				m.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return out
}

func connect(t *testing.T, ctx context.Context, url, user, lastID string) (*http.Response, <-chan message) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if user != "" {
		req.Header.Set("X-User", user)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, stream(resp.Body)
}

func TestSSE(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) { testSSE(t, testdb.SQLStore(t, d)) })
	}
}

func testSSE(t *testing.T, store *eventfold.Store[*sql.Tx]) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sig := listener.NewSignal()
	h := sse.New(store, &sse.Config{
		Buffer:    8, // small, so resuming also exercises the database catch-up
		Heartbeat: 100 * time.Millisecond,
		Tail:      listener.Options{Wakeup: sig, PollInterval: 50 * time.Millisecond},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorize: func(r *http.Request, f *listener.Filter) (func(eventfold.Event) bool, error) {
			if r.Header.Get("X-User") == "" {
				return nil, &sse.HTTPError{Status: http.StatusUnauthorized, Message: "who are you?"}
			}
			return func(ev eventfold.Event) bool { return ev.Type != "Secret" }, nil
		},
	})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { _ = h.Run(ctx) })
	srv := httptest.NewServer(h)
	defer srv.Close()

	appendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			typ := "Public"
			if i%5 == 0 {
				typ = "Secret"
			}
			out, err := store.Append(ctx, fmt.Sprintf("sse-%d", i%3), eventfold.Any, eventfold.EventData{Type: typ, Data: []byte(strconv.Itoa(i))})
			if err != nil {
				t.Error(err)
				return
			}
			_ = out
			sig.Broadcast()
		}
	}
	appendN(0, 40)

	// Unauthorised connection.
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("anonymous GET: status %d, want 401", resp.StatusCode)
	}
	waitReady(t, srv.URL)

	// First connection from the beginning: take 15 events, then drop.
	var got []eventfold.Event
	cctx, ccancel := context.WithCancel(ctx)
	resp, msgs := connect(t, cctx, srv.URL+"?after=0", "alice", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lastID := ""
	for len(got) < 15 {
		m := recv(t, msgs)
		if m.data == "" {
			continue
		}
		got = append(got, decode(t, m))
		lastID = m.id
	}
	ccancel()
	resp.Body.Close()

	// Meanwhile more events commit; the client resumes with Last-Event-ID.
	go appendN(40, 40)
	resp, msgs = connect(t, ctx, srv.URL, "alice", lastID)
	sawHeartbeat := false
	deadline := time.After(30 * time.Second)
	for len(got) < 64 || !sawHeartbeat { // 80 events, 16 of them secret
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("stream closed after %d events", len(got))
			}
			if m.heartbeat {
				sawHeartbeat = true
			}
			if m.data != "" {
				got = append(got, decode(t, m))
			}
		case <-deadline:
			t.Fatalf("timed out with %d events, heartbeat %v", len(got), sawHeartbeat)
		}
	}
	resp.Body.Close()
	want := visible(readLog(t, store, 0))
	if len(got) != len(want) {
		t.Errorf("got %d events, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].GlobalPosition != want[i].GlobalPosition {
			t.Fatalf("event %d: position %d, want %d (gap or duplicate)", i, got[i].GlobalPosition, want[i].GlobalPosition)
		}
	}
	for _, e := range got {
		if e.Type == "Secret" {
			t.Fatalf("unauthorised event %d was sent", e.GlobalPosition)
		}
	}

	// A query filter: only stream sse-1.
	resp, msgs = connect(t, ctx, srv.URL+"?after=0&stream=sse-1", "bob", "")
	defer resp.Body.Close()
	var filtered []eventfold.Event
	for _, e := range want {
		if e.StreamID == "sse-1" {
			filtered = append(filtered, e)
		}
	}
	for i := range filtered {
		m := recv(t, msgs)
		for m.data == "" {
			m = recv(t, msgs)
		}
		if e := decode(t, m); e.GlobalPosition != filtered[i].GlobalPosition || e.StreamID != "sse-1" {
			t.Fatalf("filtered event %d: %+v, want position %d", i, e, filtered[i].GlobalPosition)
		}
	}
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	for range 200 {
		req, _ := http.NewRequest(http.MethodHead, url, nil)
		req.Header.Set("X-User", "probe")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("SSE handler never became ready")
}

func recv(t *testing.T, msgs <-chan message) message {
	t.Helper()
	select {
	case m, ok := <-msgs:
		if !ok {
			t.Fatal("stream closed")
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for a message")
	}
	return message{}
}

func decode(t *testing.T, m message) eventfold.Event {
	t.Helper()
	var e eventfold.Event
	if err := json.Unmarshal([]byte(m.data), &e); err != nil {
		t.Fatalf("decode %q: %v", m.data, err)
	}
	if strconv.FormatInt(e.GlobalPosition, 10) != m.id {
		t.Fatalf("SSE id %s for event at position %d", m.id, e.GlobalPosition)
	}
	return e
}

func visible(evs []eventfold.Event) []eventfold.Event {
	var out []eventfold.Event
	for _, e := range evs {
		if e.Type != "Secret" {
			out = append(out, e)
		}
	}
	return out
}

func readLog(t *testing.T, store *eventfold.Store[*sql.Tx], from int64) []eventfold.Event {
	t.Helper()
	evs, err := store.ReadAll(context.Background(), eventfold.ReadAllOptions{From: from, Limit: 10000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
