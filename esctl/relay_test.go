package esctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// syncBuffer is a bytes.Buffer safe to read while the command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRelayNATS: esctl relay nats relays the log to JetStream, prints
// progress and lag, stops cleanly when interrupted (ctx ends, as on
// SIGINT) with its checkpoint saved; esctl stats then shows the relay with
// no lag, and a later append shows up as lag.
func TestRelayNATS(t *testing.T) {
	url := os.Getenv("EVENTFOLD_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err != nil {
		t.Skipf("no NATS server at %s: %v", url, err)
	}
	defer nc.Close()
	// max_open_conns=1: the relay's reads, checkpoints and lease share one
	// connection (PostgreSQL's LISTEN has its own, outside the pool).
	for _, c := range []struct {
		d       eventfold.Dialect
		maxOpen int
	}{{eventfold.SQLite, 0}, {eventfold.Postgres, 0}, {eventfold.SQLite, 1}, {eventfold.Postgres, 1}, {eventfold.MySQL, 1}} {
		d := c.d
		name := string(d) + "/default-pool"
		if c.maxOpen > 0 {
			name = fmt.Sprintf("%s/max_open_conns=%d", d, c.maxOpen)
		}
		t.Run(name, func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			if c.maxOpen > 0 {
				dsn = withMaxOpen(dsn, c.maxOpen)
			}
			for i := range 5 {
				mustRun(t, dsn, "append", "--stream", fmt.Sprintf("acct-%d", i%2), "--type", "Opened", "--data", `{}`)
			}
			stream := fmt.Sprintf("EFTEST_ESCTL_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
			prefix := strings.ToLower(stream)
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			t.Cleanup(func() { _ = js.DeleteStream(context.Background(), stream) })

			ctx, cancel := context.WithCancel(context.Background())
			var out, errb syncBuffer
			done := make(chan int, 1)
			go func() {
				done <- Main(ctx, []string{"--dsn", dsn, "relay", "nats", "--url", url, "--stream", stream, "--subject-prefix", prefix, "--every", "100ms", "--in-flight", "1"},
					&out, &errb, Options{Getenv: func(string) string { return "" }})
			}()
			require.Eventually(t, func() bool {
				st, err := js.Stream(context.Background(), stream)
				if err != nil {
					return false
				}
				info, err := st.Info(context.Background())
				return err == nil && info.State.Msgs == 5
			}, 30*time.Second, 20*time.Millisecond)
			// Live: one more event arrives too.
			mustRun(t, dsn, "append", "--stream", "acct-9", "--type", "Closed", "--data", `{}`)
			require.Eventually(t, func() bool {
				st, _ := js.Stream(context.Background(), stream)
				info, err := st.Info(context.Background())
				return err == nil && info.State.Msgs == 6
			}, 30*time.Second, 20*time.Millisecond)
			require.Eventually(t, func() bool { return strings.Contains(errb.String(), "caught up: published 6") }, 10*time.Second, 20*time.Millisecond)
			cancel()
			select {
			case code := <-done:
				require.Equal(t, 0, code, errb.String())
			case <-time.After(30 * time.Second):
				t.Fatal("relay did not stop")
			}
			require.Contains(t, errb.String(), "relay stopped; checkpoint saved")
			require.Contains(t, errb.String(), "batches of 1000, 1 in flight")
			require.Contains(t, errb.String(), "lag 0 events")
			require.Empty(t, out.String())

			var st Stats
			require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
			require.Len(t, st.Relays, 1)
			require.Equal(t, Relay{Kind: "nats", Target: stream, Name: "nats-relay:" + stream, Position: st.Relays[0].Position, UpdatedAt: st.Relays[0].UpdatedAt}, st.Relays[0])
			require.Zero(t, st.Relays[0].LagEvents)
			mustRun(t, dsn, "append", "--stream", "acct-9", "--type", "Reopened", "--data", `{}`)
			// Lag counts up to the head, which on PostgreSQL a transaction
			// elsewhere in the cluster may hold back for a moment.
			require.Eventually(t, func() bool {
				var st Stats
				require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
				return st.Relays[0].LagEvents == 1
			}, 30*time.Second, 50*time.Millisecond)
			require.Contains(t, mustRun(t, dsn, "stats"), "Relays:")
		})
	}
}

func TestRelayUsage(t *testing.T) {
	for _, args := range [][]string{{"relay"}, {"relay", "kafka"}, {"relay", "nats"}, {"relay", "nats", "--stream", "S", "--batch", "0"},
		{"relay", "nats", "--stream", "S", "--partitions", "-1"},
		{"relay", "nats", "--stream", "S", "--in-flight", "0"}, {"relay", "nats", "--stream", "S", "--in-flight", "-2"}, {"relay", "nats", "--stream", "S", "extra"}} {
		r := run(t, Options{}, "sqlite://"+t.TempDir()+"/x.db", args...)
		require.Equal(t, 2, r.code, "%v: %s", args, r.stderr)
		require.Empty(t, r.stdout)
	}
}

// TestRelayNATSHidesSecrets: a NATS URL with a password or token never
// appears in esctl's output, even while the server cannot be reached; and
// an interrupt stops the relay cleanly in that state too.
func TestRelayNATSHidesSecrets(t *testing.T) {
	dsn := "sqlite://" + t.TempDir() + "/x.db"
	mustRun(t, dsn, "migrate", "up")
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out, errb syncBuffer
	code := Main(ctx, []string{"--dsn", dsn, "relay", "nats", "--url", "nats://ada:s3cret@127.0.0.1:1,nats://t0ken@127.0.0.1:2", "--stream", "S", "--every", "100ms"},
		&out, &errb, Options{Getenv: func(string) string { return "" }})
	require.Equal(t, 0, code, errb.String())
	require.NotContains(t, errb.String(), "s3cret")
	require.NotContains(t, errb.String(), "t0ken")
	require.Contains(t, errb.String(), "nats://xxxxx@127.0.0.1:1")
	require.Contains(t, errb.String(), "relay stopped")
}
