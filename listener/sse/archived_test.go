package sse_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestResumeFromArchivedPosition: a client resuming (Last-Event-ID or
// ?after=) from a position whose events were archived gets 410 Gone with
// the first position it can resume from. Before the fix it got 200, a
// "connected" comment and an immediately closed stream, so EventSource
// reconnected with the same Last-Event-ID every 2 s for ever, each time
// costing a database read, and the user was never told why nothing came.
func TestResumeFromArchivedPosition(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			dsn := testdb.DSN(t, d)
			drv, err := sqldriver.Open(ctx, dsn)
			require.NoError(t, err)
			t.Cleanup(func() { drv.Close() })
			store := eventfold.New(drv, nil)
			var pos []int64
			for i := 0; i < 5; i++ {
				evs, err := store.Append(ctx, "s-1", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
				require.NoError(t, err)
				pos = append(pos, evs[0].GlobalPosition)
			}
			wctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			_, err = store.WaitHead(wctx, pos[4])
			require.NoError(t, err)
			var out, errOut bytes.Buffer
			code := esctl.Main(ctx, []string{"--dsn", dsn, "archive", "--before", fmt.Sprint(pos[3]), "--to", filepath.Join(t.TempDir(), "a.gz")}, &out, &errOut, esctl.Options{})
			require.Zero(t, code, "%s%s", out.String(), errOut.String())

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

			get := func(query, last string) (int, string) {
				c, cc := context.WithTimeout(ctx, 2*time.Second)
				defer cc()
				req, _ := http.NewRequestWithContext(c, http.MethodGet, srv.URL+query, nil)
				if last != "" {
					req.Header.Set("Last-Event-ID", last)
				}
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b, _ := io.ReadAll(resp.Body)
					return resp.StatusCode, string(b)
				}
				// A stream: read its first two events (or what comes).
				b := make([]byte, 4096)
				var got []byte
				for !bytes.Contains(got, []byte(fmt.Sprintf("id: %d\n", pos[4]))) {
					n, err := resp.Body.Read(b)
					got = append(got, b[:n]...)
					if err != nil {
						break
					}
				}
				return resp.StatusCode, string(got)
			}
			for _, c := range []struct{ query, last string }{{"", "0"}, {"", fmt.Sprint(pos[1])}, {"?after=" + fmt.Sprint(pos[0]), ""}} {
				status, body := get(c.query, c.last)
				require.Equal(t, http.StatusGone, status, "%+v: %s", c, body)
				require.Contains(t, body, "archived")
				require.Contains(t, body, fmt.Sprintf("?after=%d", pos[3]-1))
				require.NotContains(t, body, "esctl", "operator advice is not for the client")
			}
			// Resuming where the 410 says works.
			status, body := get(fmt.Sprintf("?after=%d", pos[3]-1), "")
			require.Equal(t, http.StatusOK, status)
			require.Contains(t, body, fmt.Sprintf("id: %d\n", pos[3]))
			require.Contains(t, body, fmt.Sprintf("id: %d\n", pos[4]))
		})
	}
}
