package sse_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestResumeBeyondHeadRefused: a Last-Event-ID beyond the log's head (a
// client of another database, or of this one before it was restored from a
// backup) was answered 200 and streamed from there: the client waited with
// heartbeats, and when the log reached the position every event up to it
// had been skipped without a word. It is 409 now (EventSource stops), the
// head not named; a position at the head still streams, and garbage,
// negative and out-of-range ones stay 400.
func TestResumeBeyondHeadRefused(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			drv, err := sqldriver.Open(ctx, testdb.DSN(t, d))
			require.NoError(t, err)
			t.Cleanup(func() { drv.Close() })
			store := eventfold.New(drv, nil)
			var last int64
			for range 3 {
				evs, err := store.Append(ctx, "s-1", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
				require.NoError(t, err)
				last = evs[0].GlobalPosition
			}
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			head, err := store.WaitHead(wctx, last)
			require.NoError(t, err)

			h := sse.New(store, &sse.Config{Heartbeat: time.Hour})
			rctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); h.Run(rctx) }()
			t.Cleanup(func() { stop(); <-done })
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			require.Eventually(t, func() bool {
				resp, err := http.Head(srv.URL)
				if err != nil {
					return false
				}
				resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}, 10*time.Second, 10*time.Millisecond)

			status := func(last string) (int, string) {
				c, cc := context.WithTimeout(ctx, 2*time.Second)
				defer cc()
				req, _ := http.NewRequestWithContext(c, http.MethodGet, srv.URL, nil)
				req.Header.Set("Last-Event-ID", last)
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(resp.Body)
					return resp.StatusCode, string(b)
				}
				return resp.StatusCode, ""
			}
			for _, beyond := range []int64{head + 1, head + 1000, 1<<63 - 1} {
				code, body := status(fmt.Sprint(beyond))
				require.Equal(t, http.StatusConflict, code, "Last-Event-ID %d, head %d: %s", beyond, head, body)
				require.Contains(t, body, "beyond_head")
				require.NotContains(t, body, fmt.Sprintf(" %d", head), "the head is not named")
			}
			code, body := status(fmt.Sprint(head))
			require.Equal(t, http.StatusOK, code, body)
			for _, bad := range []string{"-1", "abc", "9223372036854775808", "1e3", " ", "0x10"} {
				code, body := status(bad)
				if strings.TrimSpace(bad) == "" {
					require.Equal(t, http.StatusOK, code, body) // no resume position: from the head
					continue
				}
				require.Equal(t, http.StatusBadRequest, code, "%q: %s", bad, body)
			}
		})
	}
}
