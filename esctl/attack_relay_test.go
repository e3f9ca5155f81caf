package esctl

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestAttackRelayURLCredentials: esctl relay nats against a server whose
// password holds '@', ':', ',' and '%'. Percent-encoded it relays; a wrong
// one, an unreachable server and a malformed URL each give a clear message
// on stderr that never shows the password (before: a malformed URL printed
// it inside nats.go's parse error, and an unreachable or refusing server
// showed only "relaying" and a timeout).
func TestAttackRelayURLCredentials(t *testing.T) {
	const user, pass = "relayer", "p@ss:w0rd,%x"
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, Username: user, Password: pass})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second))
	t.Cleanup(s.Shutdown)
	hostport := strings.TrimPrefix(s.ClientURL(), "nats://")
	good := "nats://" + user + ":" + url.QueryEscape(pass) + "@" + hostport
	dsn := testdb.DSN(t, eventfold.SQLite)
	mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Opened", "--data", `{}`)

	relay := func(u string, wait func(stderr *syncBuffer) bool) (int, string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var out, errb syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- Main(ctx, []string{"--dsn", dsn, "relay", "nats", "--url", u, "--stream", "ATTACK", "--every", "100ms", "--memory"},
				&out, &errb, Options{Getenv: func(string) string { return "" }})
		}()
		deadline := time.After(30 * time.Second)
		for !wait(&errb) {
			select {
			case code := <-done:
				return code, errb.String()
			case <-deadline:
				cancel()
				<-done
				t.Fatalf("gave up waiting; stderr:\n%s", errb.String())
			case <-time.After(20 * time.Millisecond):
			}
		}
		cancel()
		return <-done, errb.String()
	}
	noSecret := func(stderr string) {
		t.Helper()
		for _, secret := range []string{pass, url.QueryEscape(pass), "w0rd"} {
			require.NotContains(t, stderr, secret)
		}
	}

	code, stderr := relay(good, func(e *syncBuffer) bool { return strings.Contains(e.String(), "caught up: published 1") })
	require.Equal(t, 0, code, stderr)
	noSecret(stderr)
	nc, err := nats.Connect(good)
	require.NoError(t, err, "the percent-encoded URL")
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), "ATTACK")
	require.NoError(t, err)
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs)

	wrong := "nats://" + user + ":" + url.QueryEscape("p@ss:w0rd,%y") + "@" + hostport
	// Still retrying after many refusals (nats.go's default closes the
	// connection after the second, and the relay then waited for ever).
	code, stderr = relay(wrong, func(e *syncBuffer) bool {
		return strings.Count(e.String(), "(nats: Authorization Violation), retrying") >= 5
	})
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "not connected to NATS at nats://xxxxx@"+hostport)
	noSecret(stderr)

	_, stderr = relay("nats://"+user+":"+url.QueryEscape(pass)+"@127.0.0.1:1", func(e *syncBuffer) bool { return strings.Contains(e.String(), "connection refused") })
	require.Contains(t, stderr, "not connected to NATS")
	noSecret(stderr)

	code, stderr = relay("nats://"+user+":"+pass+"@"+hostport, func(*syncBuffer) bool { return false })
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "percent-encode")
	noSecret(stderr)
	for _, bad := range []string{"nats://u:s3cr%zzet@" + hostport, "nats ://u:s3cret@" + hostport} {
		code, stderr = relay(bad, func(*syncBuffer) bool { return false })
		require.NotEqual(t, 0, code, bad)
		require.Contains(t, stderr, "URL 1 of the list is not a valid URL", bad)
		require.NotContains(t, stderr, "s3cr", bad)
	}
}
