package sse_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener/sse"
)

// TestDefaultMaxClients: a handler configured with no MaxClients still
// caps its clients, at DefaultMaxClients; the one beyond gets 503 with
// Retry-After, and a place freed is taken again.
func TestDefaultMaxClients(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	h := sse.New(store, &sse.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer cancel() // the streams end before srv.Close waits for them
	waitReady(t, srv.URL)
	addr := strings.TrimPrefix(srv.URL, "http://")

	open := func() (net.Conn, string) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(30*time.Second)))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		status := resp.Status
		if resp.StatusCode == http.StatusServiceUnavailable {
			status += " Retry-After=" + resp.Header.Get("Retry-After")
		}
		return c, status
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range sse.DefaultMaxClients {
		c, status := open()
		conns = append(conns, c)
		require.Equal(t, "200 OK", status, "client %d", i+1)
	}
	require.Equal(t, sse.DefaultMaxClients, h.Clients())
	c, status := open()
	c.Close()
	require.Equal(t, "503 Service Unavailable Retry-After=5", status, "client %d", sse.DefaultMaxClients+1)

	conns[0].Close()
	conns = conns[1:]
	require.Eventually(t, func() bool { return h.Clients() < sse.DefaultMaxClients }, 30*time.Second, 10*time.Millisecond)
	c, status = open()
	conns = append(conns, c)
	require.Equal(t, "200 OK", status, "a freed place is taken again")
}
