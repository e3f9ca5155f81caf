package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// lockedBuffer is a bytes.Buffer safe to read while serve writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeMetricsEndpoint runs `bankctl --metrics-addr ... serve`, posts
// commands over HTTP and scrapes /metrics, on its own address, over HTTP:
// the dispatch duration histogram and the subscription lag gauge are there.
func TestServeMetricsEndpoint(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			dsn := testdb.DSN(t, d)
			var out bytes.Buffer
			require.Equal(t, 0, esctl.Main(ctx, []string{"--dsn", dsn, "migrate", "up"}, &out, &out, options()), out.String())

			// A durable subscription that has not run: one the lag gauge shows.
			drv, err := sqldriver.Open(ctx, dsn)
			require.NoError(t, err)
			defer drv.Close()
			store := eventfold.New(drv, nil)
			require.NoError(t, listener.SetCheckpoint(ctx, store, "mailer", 0))

			stderr := &lockedBuffer{}
			done := make(chan int, 1)
			go func() {
				done <- esctl.Main(ctx, []string{"--dsn", dsn, "--metrics-addr", "127.0.0.1:0", "serve", "--addr", "127.0.0.1:0"}, io.Discard, stderr, options())
			}()
			var metricsURL, serveURL string
			require.Eventually(t, func() bool {
				s := stderr.String()
				if m := regexp.MustCompile(`metrics at (http://\S+/metrics)`).FindStringSubmatch(s); m != nil {
					metricsURL = m[1]
				}
				if m := regexp.MustCompile(`serving (http://[0-9.:]+)`).FindStringSubmatch(s); m != nil {
					serveURL = m[1]
				}
				return metricsURL != "" && serveURL != ""
			}, 10*time.Second, 10*time.Millisecond, "serve's stderr: %s", stderr)
			require.NotEqual(t, strings.TrimSuffix(metricsURL, "/metrics"), serveURL, "metrics on an address of their own")

			for _, body := range []string{`{"account_id":"acc-1","owner":"Ada","number":"NL01"}`} {
				resp, err := http.Post(serveURL+"/commands/OpenAccount", "application/json", strings.NewReader(body))
				require.NoError(t, err)
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", b)
			}
			// PostgreSQL: the head (and so the lag) waits for other
			// transactions of the shared cluster that hold the horizon back.
			last, err := store.LastPosition(ctx)
			require.NoError(t, err)
			wctx, wcancel := context.WithTimeout(ctx, time.Minute)
			defer wcancel()
			_, err = store.WaitHead(wctx, last)
			require.NoError(t, err)
			resp, err := http.Get(metricsURL)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			text := string(b)
			require.Regexp(t, `(?m)^eventfold_dispatch_duration_seconds_bucket\{.*eventfold_command_name="OpenAccount".*eventfold_dispatch_outcome="committed".*\} 1$`, text)
			require.Regexp(t, `(?m)^eventfold_subscription_lag\{.*messaging_consumer_group_name="mailer".*\} [1-9][0-9.e+]*$`, text)
			require.Regexp(t, `(?m)^eventfold_events_appended_total\{.*\} 1$`, text)
			cancel()
			select {
			case code := <-done:
				require.Equal(t, 0, code, stderr.String())
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not stop")
			}
		})
	}
}
