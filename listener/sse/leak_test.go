package sse_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
)

// ownStreams lets user X see the events of stream "own-X" only.
func ownStreams(r *http.Request, _ *listener.Filter) (func(eventfold.Event) bool, error) {
	user := r.Header.Get("X-User")
	return func(ev eventfold.Event) bool { return ev.StreamID == "own-"+user }, nil
}

func startLeakServer(t *testing.T, d eventfold.Dialect) (*eventfold.Store[*sql.Tx], *listener.Signal, string) {
	t.Helper()
	store := testdb.SQLStore(t, d)
	ctx, cancel := context.WithCancel(context.Background())
	sig := listener.NewSignal()
	h := sse.New(store, &sse.Config{
		Buffer:    8, // small: a resume from far back reads the database
		Heartbeat: 30 * time.Millisecond,
		Tail:      listener.Options{Wakeup: sig, PollInterval: 20 * time.Millisecond},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authorize: ownStreams,
	})
	var wg sync.WaitGroup
	wg.Go(func() { _ = h.Run(ctx) })
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); cancel(); wg.Wait() })
	waitReady(t, srv.URL)
	return store, sig, srv.URL
}

// rawLines collects every line a connection receives, until ctx ends.
func rawLines(t *testing.T, ctx context.Context, url, user, lastID string) func() []string {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("X-User", user)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var mu sync.Mutex
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), lines...)
	}
}

// TestHeartbeatsRevealNothing: a client that may see none of the events
// receives the same bytes whether the log moves or not: no id, no
// position. Before the fix its heartbeats carried the log head as "id: N"
// (and its greeting "connected at N").
func TestHeartbeatsRevealNothing(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			store, sig, url := startLeakServer(t, d)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for i := range 3 {
				_, err := store.Append(ctx, "own-alice", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(strconv.Itoa(i))})
				require.NoError(t, err)
			}
			lines := rawLines(t, ctx, url, "eve", "")
			time.Sleep(100 * time.Millisecond)
			for i := range 5 { // five deposits by someone else
				_, err := store.Append(ctx, "own-alice", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(strconv.Itoa(i))})
				require.NoError(t, err)
				sig.Broadcast()
			}
			time.Sleep(300 * time.Millisecond) // about ten heartbeats
			got := lines()
			heartbeats := 0
			for _, l := range got {
				switch l {
				case ": heartbeat":
					heartbeats++
				case "", ": connected", "retry: 2000":
				default:
					t.Errorf("the client got %q: everything but bare heartbeats leaks the log", l)
				}
			}
			require.GreaterOrEqual(t, heartbeats, 3, "%q", got)
		})
	}
}

// TestSparseResume: a client whose events are sparse resumes from the last
// one it got (its Last-Event-ID), across many events it may not see that
// have left the ring, and gets exactly its missed events.
func TestSparseResume(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			store, sig, url := startLeakServer(t, d)
			ctx := context.Background()
			appendTo := func(stream string, n int) []eventfold.Event {
				var out []eventfold.Event
				for i := range n {
					evs, err := store.Append(ctx, stream, eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(strconv.Itoa(i))})
					require.NoError(t, err)
					out = append(out, evs...)
				}
				sig.Broadcast()
				return out
			}
			cctx, cancel := context.WithCancel(ctx)
			resp, msgs := connect(t, cctx, url, "bob", "")
			time.Sleep(100 * time.Millisecond)
			first := appendTo("own-bob", 1)[0]
			appendTo("own-alice", 20)
			m := recv(t, msgs)
			for m.data == "" {
				m = recv(t, msgs)
			}
			require.Equal(t, strconv.FormatInt(first.GlobalPosition, 10), m.id)
			cancel()
			resp.Body.Close()

			// Away: many events for others (far beyond the ring), two for bob.
			appendTo("own-alice", 40)
			want := appendTo("own-bob", 1)
			appendTo("own-alice", 300)
			want = append(want, appendTo("own-bob", 1)...)
			appendTo("own-alice", 10)

			cctx, cancel = context.WithCancel(ctx)
			defer cancel()
			resp, msgs = connect(t, cctx, url, "bob", m.id)
			defer resp.Body.Close()
			var got []string
			deadline := time.After(20 * time.Second)
			for len(got) < len(want) {
				select {
				case m, ok := <-msgs:
					require.True(t, ok, "stream closed")
					require.False(t, m.id == "" && m.data != "", "data without id")
					if m.data != "" {
						got = append(got, m.id)
					} else {
						require.Empty(t, m.id, "a message without data carries an id")
					}
				case <-deadline:
					t.Fatalf("got %v, want %d events", got, len(want))
				}
			}
			require.Equal(t, []string{fmt.Sprint(want[0].GlobalPosition), fmt.Sprint(want[1].GlobalPosition)}, got)
			// Nothing more arrives (no duplicate).
			select {
			case m := <-msgs:
				require.True(t, m.heartbeat && m.id == "" && m.data == "", "unexpected %+v", m)
			case <-time.After(200 * time.Millisecond):
			}
		})
	}
}
