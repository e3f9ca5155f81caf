package httpapi_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack5RequestDeadlineIsAnswered: a server that bounds each request
// with a context deadline (a common middleware: r.WithContext with
// context.WithTimeout) and a command slower than it. The handler took the
// deadline for "the client went away" and wrote nothing, so net/http sent
// 200 OK with an empty body for a command that was never committed. It must
// answer an error that says to retry, and a retry with the same key must
// run the command once.
func TestAttack5RequestDeadlineIsAnswered(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 1})
	slow := make(chan bool, 1)
	slow <- true // the first dispatch waits out the deadline
	orchestrator.Handle(o, "Ping", func(ctx context.Context, tx *sql.Tx, c struct{ N int }) ([]orchestrator.Emit, error) {
		select {
		case <-slow:
			<-ctx.Done()
			return nil, ctx.Err()
		default:
		}
		return []orchestrator.Emit{{Stream: "ping", Expected: eventfold.Any, Type: "Pinged", Data: c}}, nil
	})
	h := httpapi.New(o, nil)
	deadline := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), 200*time.Millisecond)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
	srv := httptest.NewServer(deadline(h))
	defer srv.Close()

	post := func() (int, string, http.Header) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/commands/Ping", strings.NewReader(`{"N":1}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-deadline")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b), resp.Header
	}
	status, body, hdr := post()
	require.Equal(t, http.StatusServiceUnavailable, status, "body %q", body)
	var e map[string]string
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	require.Equal(t, "timeout", e["code"])
	require.Contains(t, e["error"], "same Idempotency-Key")
	require.NotEmpty(t, hdr.Get("Retry-After"))
	evs, err := store.ReadStream(context.Background(), "ping", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Empty(t, evs, "nothing was committed")

	status, body, _ = post()
	require.Equal(t, http.StatusCreated, status, body)
	status, body, _ = post()
	require.Equal(t, http.StatusOK, status, body)
	require.Contains(t, body, `"duplicate":true`)
	evs, err = store.ReadStream(context.Background(), "ping", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, evs, 1)

	// Without a key the advice must not promise what only a key gives.
	slow <- true
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/commands/Ping", strings.NewReader(`{"N":2}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	e = map[string]string{}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
	require.Equal(t, "timeout", e["code"])
	require.Contains(t, e["error"], "no Idempotency-Key, so a retry may apply it twice")
}

// TestAttack5CommitOutcomeUnknownOverHTTP: the COMMIT's reply is lost and
// the database cannot be reached to look the commit marker up, so the
// orchestrator cannot know whether the command was applied
// (ErrCommitOutcomeUnknown). The handler answered 500 "internal error",
// which tells a client nothing; it is 503 "commit_outcome_unknown" with
// Retry-After, saying that a retry with the same key is safe, and that
// retry returns the committed events.
func TestAttack5CommitOutcomeUnknownOverHTTP(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			proxy := testdb.StartCommitProxy(t, testdb.DSN(t, d))
			drv, err := sqldriver.Open(ctx, proxy.DSN)
			require.NoError(t, err)
			defer drv.Close()
			drv.DB().SetMaxIdleConns(0) // the lookup needs a new connection, which the proxy refuses
			store := eventfold.New(drv, nil)
			o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 1, DispatchCommitMarkers: true, ResolveTimeout: 300 * time.Millisecond})
			orchestrator.Handle(o, "Ping", func(ctx context.Context, tx *sql.Tx, c struct{ N int }) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "ping", Expected: eventfold.Any, Type: "Pinged", Data: c}}, nil
			})
			srv := httptest.NewServer(httpapi.New(o, &httpapi.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
			defer srv.Close()
			post := func() (int, string, http.Header) {
				req, err := http.NewRequest(http.MethodPost, srv.URL+"/commands/Ping", strings.NewReader(`{"N":1}`))
				require.NoError(t, err)
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Idempotency-Key", "k-lost")
				resp, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				return resp.StatusCode, string(b), resp.Header
			}
			var once atomic.Bool
			proxy.SetDropReply(func() bool {
				if once.CompareAndSwap(false, true) {
					proxy.Refuse.Store(true)
					return true
				}
				return false
			})
			status, body, hdr := post()
			require.True(t, once.Load(), "a COMMIT reply was dropped")
			require.Equal(t, http.StatusServiceUnavailable, status, body)
			var e map[string]string
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			require.Equal(t, "commit_outcome_unknown", e["code"], body)
			require.Contains(t, e["error"], "same Idempotency-Key")
			require.NotEmpty(t, hdr.Get("Retry-After"))

			proxy.Refuse.Store(false)
			status, body, _ = post()
			require.Equal(t, http.StatusOK, status, body)
			require.Contains(t, body, `"duplicate":true`)
			require.Contains(t, body, `"type":"Pinged"`, "the committed event comes back")
		})
	}
}
