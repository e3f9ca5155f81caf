package natsrelay_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

// runRelay starts a relay in the background; the returned func stops it
// and returns Run's result.
func runRelay(t testing.TB, store *eventfold.Store[*sql.Tx], nc *nats.Conn, o natsrelay.Options) (*natsrelay.Relay[*sql.Tx], func() error) {
	t.Helper()
	if o.Listener.PollInterval == 0 {
		o.Listener.PollInterval = 20 * time.Millisecond
	}
	if o.Listener.RetryMax == 0 {
		o.Listener.RetryMin, o.Listener.RetryMax = 20*time.Millisecond, 500*time.Millisecond
	}
	r, err := natsrelay.New(store, nc, o)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var res error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case res = <-done:
			case <-time.After(30 * time.Second):
				res = errors.New("relay did not stop within 30s")
			}
		})
		return res
	}
	t.Cleanup(func() { _ = stop() })
	return r, stop
}

// TestRelayExactlyOnce: events from 8 concurrent writers, with rollbacks
// and a transaction held open while later ones commit, arrive in JetStream
// exactly once, in global position order, while the relay runs live.
func TestRelayExactlyOnce(t *testing.T) {
	total := int64(envInt("NATSRELAY_TEST_EVENTS", 20000))
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx], _ string) {
		nc := connect(t, sharedURL(t))
		stream, prefix := uniqueStream(t, nc)
		createStream(t, nc, stream, prefix, jetstream.FileStorage)
		r, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix})
		writeLoad(t, store, total)
		log := readLog(t, store)
		waitStream(t, nc, stream, uint64(len(log)), 2*time.Minute)
		require.NoError(t, stop())
		checkExactlyOnce(t, log, streamEvents(t, nc, stream))
		st := r.Stats()
		require.EqualValues(t, len(log), st.Published)
		lag, err := r.Lag(context.Background())
		require.NoError(t, err)
		require.Zero(t, lag)
		t.Logf("%d events relayed", len(log))
	})
}

// TestRelayHeaders: subject and headers of a relayed event.
func TestRelayHeaders(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	ctx := context.Background()
	out, err := store.Append(ctx, "acct-1.2 x", eventfold.NoStream, eventfold.EventData{Type: "Money Moved>", Data: data(1),
		Metadata: data(map[string]string{"correlation_id": "corr", "causation_id": "cause\nbad", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "k=v"})})
	require.NoError(t, err)
	_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, CreateStream: true})
	waitStream(t, nc, stream, 1, 30*time.Second)
	require.NoError(t, stop())
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	m, err := st.GetMsg(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, prefix+".acct.Money%20Moved%3E", m.Subject)
	ev := out[0]
	require.Equal(t, ev.ID, m.Header.Get(jetstream.MsgIDHeader))
	require.Equal(t, fmt.Sprint(ev.GlobalPosition), m.Header.Get(natsrelay.HeaderPosition))
	require.Equal(t, "acct-1.2 x", m.Header.Get(natsrelay.HeaderStreamID))
	require.Equal(t, "1", m.Header.Get(natsrelay.HeaderStreamVersion))
	require.Equal(t, ev.ID, m.Header.Get(natsrelay.HeaderEventID))
	require.Equal(t, "Money Moved>", m.Header.Get(natsrelay.HeaderEventType))
	require.Equal(t, "corr", m.Header.Get(natsrelay.HeaderCorrelationID))
	require.Empty(t, m.Header.Get(natsrelay.HeaderCausationID), "a value with a line break is not a header")
	require.Equal(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", m.Header.Get("traceparent"))
	require.Equal(t, "k=v", m.Header.Get("tracestate"))
	got, err := natsrelay.DecodeEvent(m.Header, m.Data)
	require.NoError(t, err)
	require.Equal(t, ev.StreamID, got.StreamID)
	require.JSONEq(t, string(ev.Metadata), string(got.Metadata))
	require.True(t, ev.RecordedAt.Equal(got.RecordedAt))
}

// TestRelayResumesAfterDuplicateWindow: the relay crashed after JetStream
// acked and before its checkpoint moved (simulated by moving the checkpoint
// back to 0), and stays down longer than the stream's duplicate window: it
// must still not publish anything twice, because it resumes after the
// position of the stream's last message.
func TestRelayResumesAfterDuplicateWindow(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx], _ string) {
		nc := connect(t, sharedURL(t))
		stream, prefix := uniqueStream(t, nc)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx := context.Background()
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{prefix + ".>"}, Duplicates: 100 * time.Millisecond})
		require.NoError(t, err)
		appendN(t, store, 300)
		o := natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Listener: listener.Options{BatchSize: 64}}
		r, stop := runRelay(t, store, nc, o)
		waitStream(t, nc, stream, 300, time.Minute)
		require.NoError(t, stop())
		require.NoError(t, listener.SetCheckpoint(ctx, store, r.Name(), 0))
		time.Sleep(300 * time.Millisecond) // past the duplicate window
		appendN(t, store, 50)
		r2, stop2 := runRelay(t, store, nc, o)
		waitStream(t, nc, stream, 350, time.Minute)
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, stop2())
		checkExactlyOnce(t, readLog(t, store), streamEvents(t, nc, stream))
		require.EqualValues(t, 300, r2.Stats().Skipped)
	})
}

// TestRelayFaults: while writers commit, the relay's connection is cut and
// the NATS server is killed and restarted (same store directory): every
// event still lands in JetStream exactly once, in order.
func TestRelayFaults(t *testing.T) {
	total := int64(envInt("NATSRELAY_TEST_FAULT_EVENTS", 6000))
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx], _ string) {
		dir := t.TempDir()
		srv := startServer(t, dir, -1)
		port := srv.Addr().(*net.TCPAddr).Port
		var smu sync.Mutex
		t.Cleanup(func() { smu.Lock(); srv.Shutdown(); smu.Unlock() })
		px := newProxy(t, srv.Addr().String())
		nc := connect(t, px.url())
		stream, prefix := "FAULTS", "faults"
		createStream(t, nc, stream, prefix, jetstream.FileStorage)
		_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, AckTimeout: 2 * time.Second,
			Listener: listener.Options{BatchSize: 200}})
		faults := make(chan struct{})
		go func() {
			defer close(faults)
			for i := range 3 {
				time.Sleep(300 * time.Millisecond)
				px.cut()
				t.Logf("round %d: connection cut", i)
				time.Sleep(300 * time.Millisecond)
				smu.Lock()
				srv.Shutdown()
				srv.WaitForShutdown()
				t.Logf("round %d: server down", i)
				time.Sleep(200 * time.Millisecond)
				srv = startServer(t, dir, port)
				smu.Unlock()
				t.Logf("round %d: server up", i)
			}
		}()
		writeLoad(t, store, total)
		<-faults
		log := readLog(t, store)
		waitStream(t, nc, stream, uint64(len(log)), 2*time.Minute)
		time.Sleep(300 * time.Millisecond)
		require.NoError(t, stop())
		checkExactlyOnce(t, log, streamEvents(t, nc, stream))
	})
}

// TestRelayLeaseOneAtATime: two relays of the same name run side by side;
// one drives, the other stands by, and nothing is published twice.
func TestRelayLeaseOneAtATime(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	o := natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Listener: listener.Options{BatchSize: 50, LeaseTTL: time.Second}}
	r1, stop1 := runRelay(t, store, nc, o)
	r2, stop2 := runRelay(t, store, nc, o)
	appendN(t, store, 1000)
	waitStream(t, nc, stream, 1000, time.Minute)
	require.False(t, r1.Stats().Subscription.Holding && r2.Stats().Subscription.Holding)
	require.NoError(t, stop1()) // the other takes over
	appendN(t, store, 500)
	waitStream(t, nc, stream, 1500, time.Minute)
	require.NoError(t, stop2())
	checkExactlyOnce(t, readLog(t, store), streamEvents(t, nc, stream))
}

// TestRelayRefusesForeignStream: a last message the relay did not publish
// stops Run with ErrForeignMessage instead of guessing a position.
func TestRelayRefusesForeignStream(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.Publish(context.Background(), prefix+".other", []byte("hi"))
	require.NoError(t, err)
	appendN(t, store, 3)
	r, err := natsrelay.New(store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.ErrorIs(t, r.Run(ctx), natsrelay.ErrForeignMessage)
}

// TestRelayBadSubjectStops: a Subject function that returns an invalid
// subject stops Run with ErrInvalidInput; nothing at or after that event is
// published, nothing is skipped.
func TestRelayBadSubjectStops(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	appendN(t, store, 10)
	for _, bad := range []string{prefix + ".a b", prefix + ".*", prefix + ".a..b", "elsewhere.x", prefix + ".>"} {
		r, err := natsrelay.New(store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix,
			Subject: func(p string, ev eventfold.Event) (string, error) { return bad, nil }})
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		require.ErrorIs(t, r.Run(ctx), eventfold.ErrInvalidInput, bad)
		cancel()
		pos, _, err := listener.Checkpoint(context.Background(), store, r.Name())
		require.NoError(t, err)
		require.Zero(t, pos, bad)
	}
	require.Empty(t, streamEvents(t, nc, stream))
}

func TestNewRefusesBadOptions(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	nc := connect(t, sharedURL(t))
	for _, o := range []natsrelay.Options{
		{Stream: ""}, {Stream: "a.b"}, {Stream: "a b"}, {Stream: "a*"},
		{Stream: "S", SubjectPrefix: "a..b"}, {Stream: "S", SubjectPrefix: "a.>"}, {Stream: "S", SubjectPrefix: "a b"},
		{Stream: "S", Name: " x"},
	} {
		_, err := natsrelay.New(store, nc, o)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, "%+v", o)
	}
	_, err := natsrelay.New(store, nil, natsrelay.Options{Stream: "S"})
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
}

// TestRelayKilledMidBatch runs the relay in a child process (this test
// binary, re-executed), SIGKILLs it while batches are in flight, several
// times, then lets a last one finish: every event is in JetStream exactly
// once.
func TestRelayKilledMidBatch(t *testing.T) {
	if os.Getenv("NATSRELAY_CHILD_DSN") != "" {
		relayChild(t)
		return
	}
	n := envInt("NATSRELAY_TEST_KILL_EVENTS", 20000)
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx], dsn string) {
		nc := connect(t, sharedURL(t))
		stream, prefix := uniqueStream(t, nc)
		createStream(t, nc, stream, prefix, jetstream.FileStorage)
		appendN(t, store, n)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		msgs := func() uint64 {
			st, err := js.Stream(context.Background(), stream)
			require.NoError(t, err)
			info, err := st.Info(context.Background())
			require.NoError(t, err)
			return info.State.Msgs
		}
		child := func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestRelayKilledMidBatch$", "-test.count=1")
			cmd.Env = append(os.Environ(), "NATSRELAY_CHILD_DSN="+dsn, "NATSRELAY_CHILD_URL="+nc.ConnectedUrl(),
				"NATSRELAY_CHILD_STREAM="+stream, "NATSRELAY_CHILD_PREFIX="+prefix)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			require.NoError(t, cmd.Start())
			return cmd
		}
		for round := range 3 {
			before := msgs()
			cmd := child()
			// Kill as soon as the stream grew: most likely inside a batch
			// (1,000 events), before the checkpoint moved.
			deadline := time.Now().Add(time.Minute)
			for time.Now().Before(deadline) {
				if m := msgs(); m > before+uint64(100*round) && m%1000 != 0 {
					break
				}
				time.Sleep(500 * time.Microsecond)
			}
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			_ = cmd.Wait()
			pos, _, err := listener.Checkpoint(context.Background(), store, "nats-relay:"+stream)
			require.NoError(t, err)
			t.Logf("round %d: killed with %d messages in the stream, checkpoint at %d", round, msgs(), pos)
		}
		// The killed child's lease expires after its TTL (1s); this relay
		// takes over then.
		_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Listener: listener.Options{LeaseTTL: time.Second}})
		waitStream(t, nc, stream, uint64(n), 2*time.Minute)
		time.Sleep(200 * time.Millisecond)
		require.NoError(t, stop())
		checkExactlyOnce(t, readLog(t, store), streamEvents(t, nc, stream))
	})
}

func relayChild(t *testing.T) {
	store := openStore(t, os.Getenv("NATSRELAY_CHILD_DSN"))
	nc := connect(t, os.Getenv("NATSRELAY_CHILD_URL"))
	r, err := natsrelay.New(store, nc, natsrelay.Options{Stream: os.Getenv("NATSRELAY_CHILD_STREAM"), SubjectPrefix: os.Getenv("NATSRELAY_CHILD_PREFIX"),
		Listener: listener.Options{LeaseTTL: time.Second, BatchSize: 1000, PollInterval: 20 * time.Millisecond}})
	require.NoError(t, err)
	_ = r.Run(context.Background()) // until SIGKILL
}
