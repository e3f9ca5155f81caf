package sse_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/listener/sse"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
)

// TestErrorBodyIsJSON: every refusal of the SSE handler has the body
// httpapi's errors have, {"error", "code"} as application/json, and
// sse.HTTPError is httpapi.Error. Before, the SSE handler answered in
// plain text.
func TestErrorBodyIsJSON(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	h := sse.New(store, &sse.Config{Heartbeat: time.Hour,
		Authorize: func(r *http.Request, f *listener.Filter) (func(eventfold.Event) bool, error) {
			switch r.Header.Get("X-User") {
			case "":
				// An *sse.HTTPError is an *httpapi.Error: this only compiles
				// because the two names are one type.
				asAPI := func(e *httpapi.Error) error { return e }
				return nil, asAPI(&sse.HTTPError{Status: http.StatusUnauthorized, Message: "who are you?"})
			case "teapot":
				return nil, &sse.HTTPError{Status: http.StatusTeapot, Code: "teapot", Message: "short and stout"}
			case "plain":
				return nil, errors.New("a secret reason")
			}
			return nil, nil
		}})
	get := func(method, query, user string) (*http.Response, map[string]string) {
		t.Helper()
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(c, method, "/events"+query, nil)
		require.NoError(t, err)
		req.Header.Set("X-User", user)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		resp := rec.Result()
		var body map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body), "status %d", resp.StatusCode)
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
		return resp, body
	}

	// Not running yet: 503.
	resp, body := get(http.MethodGet, "", "ann")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Equal(t, map[string]string{"error": "event stream not running", "code": "not_running"}, body)

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	defer func() { stop(); <-done }()
	srv := httptest.NewServer(h)
	defer srv.Close()
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(c, http.MethodHead, srv.URL, nil)
		req.Header.Set("X-User", "ann")
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)

	for _, c := range []struct {
		method, query, user string
		status              int
		want                map[string]string
	}{
		{http.MethodPost, "", "ann", http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed", "code": "method_not_allowed"}},
		{http.MethodGet, "?type=%", "ann", http.StatusBadRequest, nil},
		{http.MethodGet, "", "", http.StatusUnauthorized, map[string]string{"error": "who are you?", "code": "unauthorized"}},
		{http.MethodGet, "", "teapot", http.StatusTeapot, map[string]string{"error": "short and stout", "code": "teapot"}},
		{http.MethodGet, "", "plain", http.StatusForbidden, map[string]string{"error": "forbidden", "code": "forbidden"}},
	} {
		resp, body := get(c.method, c.query, c.user)
		require.Equal(t, c.status, resp.StatusCode, "%+v", c)
		if c.want == nil {
			require.Equal(t, "bad_request", body["code"])
			require.Contains(t, body["error"], "bad query")
			continue
		}
		require.Equal(t, c.want, body, "%+v", c)
	}
}
