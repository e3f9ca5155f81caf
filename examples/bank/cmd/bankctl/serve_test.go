package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestServeTimesOutSlowClients: `bankctl serve` drops a client that
// sends its headers and then dribbles (or never sends) its body
// (slowloris), and an idle keep-alive connection, within the server's
// timeouts; an SSE stream outlives them and still gets events.
func TestServeTimesOutSlowClients(t *testing.T) {
	old := serveTimeouts
	serveTimeouts = httpTimeouts{ReadHeader: time.Second, Read: time.Second, Idle: time.Second}
	t.Cleanup(func() { serveTimeouts = old })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dsn := testdb.DSN(t, eventfold.SQLite)
	var out bytes.Buffer
	require.Equal(t, 0, esctl.Main(ctx, []string{"--dsn", dsn, "migrate", "up"}, &out, &out, options()), out.String())
	stderr := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- esctl.Main(ctx, []string{"--dsn", dsn, "serve", "--addr", "127.0.0.1:0"}, io.Discard, stderr, options())
	}()
	var serveURL string
	require.Eventually(t, func() bool {
		m := regexp.MustCompile(`serving http://([0-9.:]+)`).FindStringSubmatch(stderr.String())
		if m != nil {
			serveURL = m[1]
		}
		return m != nil
	}, 10*time.Second, 10*time.Millisecond, "serve's stderr: %s", stderr)

	// The SSE stream first: it must outlive the read timeout. (503 until
	// the stream's follower has started.)
	var resp *http.Response
	require.Eventually(t, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+serveURL+"/events", nil)
		require.NoError(t, err)
		resp, err = http.DefaultClient.Do(req)
		require.NoError(t, err)
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return false
		}
		return true
	}, 10*time.Second, 20*time.Millisecond)
	defer resp.Body.Close()
	streamStart := time.Now()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()

	// Headers, then one byte of a 100-byte body, then nothing.
	slow, err := net.Dial("tcp", serveURL)
	require.NoError(t, err)
	defer slow.Close()
	_, err = io.WriteString(slow, "POST /commands/OpenAccount HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	require.NoError(t, err)
	// Headers never finished.
	slowHeaders, err := net.Dial("tcp", serveURL)
	require.NoError(t, err)
	defer slowHeaders.Close()
	_, err = io.WriteString(slowHeaders, "POST /commands/OpenAccount HTTP/1.1\r\nHost: x\r\n")
	require.NoError(t, err)

	start := time.Now()
	for _, c := range []net.Conn{slow, slowHeaders} {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = io.ReadAll(c) // whatever the server answers, then its close
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded),
			"the server kept a slow client's connection open for %s", time.Since(start))
	}
	require.Less(t, time.Since(start), 8*time.Second)

	// The stream is still open well after the timeouts, and delivers.
	time.Sleep(3*serveTimeouts.Read - time.Since(streamStart))
	r, err := http.Post("http://"+serveURL+"/commands/OpenAccount", "application/json",
		strings.NewReader(`{"account_id":"acc-1","owner":"Ada","number":"NL01"}`))
	require.NoError(t, err)
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	require.Equal(t, http.StatusCreated, r.StatusCode, "%s", b)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-events:
			require.True(t, ok, "the SSE stream ended")
			if strings.Contains(line, "AccountOpened") {
				cancel()
				<-done
				return
			}
		case <-deadline:
			t.Fatal("no event on the SSE stream")
		}
	}
}
