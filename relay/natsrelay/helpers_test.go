package natsrelay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

func forEachDialect(t *testing.T, fn func(t *testing.T, store *eventfold.Store[*sql.Tx], dsn string)) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			fn(t, openStore(t, dsn), dsn)
		})
	}
}

func openStore(t testing.TB, dsn string) *eventfold.Store[*sql.Tx] {
	t.Helper()
	store, err := openStoreErr(dsn)
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	return store
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sharedURL is the machine's NATS server (EVENTFOLD_NATS_URL overrides);
// when none answers, an in-process one is started for the test.
func sharedURL(t testing.TB) string {
	url := os.Getenv("EVENTFOLD_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(2*time.Second))
	if err == nil {
		nc.Close()
		return url
	}
	t.Logf("no NATS at %s (%v): starting one in-process", url, err)
	s := startServer(t, t.TempDir(), -1)
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// startServer starts an in-process NATS server with JetStream storing in
// dir, on port (-1: a random one).
func startServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second), "NATS server not ready")
	return s
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(2*time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

var streamSeq atomic.Int64

// uniqueStream returns a stream name and subject prefix no other test (or
// test process) uses, and deletes the stream when the test ends.
func uniqueStream(t testing.TB, nc *nats.Conn) (name, prefix string) {
	t.Helper()
	suffix := fmt.Sprintf("%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, streamSeq.Add(1))
	name, prefix = "EFTEST_"+suffix, "eftest_"+suffix
	t.Cleanup(func() {
		js, err := jetstream.New(nc)
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Logf("delete stream %s: %v", name, err)
		}
	})
	return name, prefix
}

func createStream(t testing.TB, nc *nats.Conn, name, prefix string, storage jetstream.StorageType) {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}, Storage: storage})
	require.NoError(t, err)
}

func data(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var errRollback = errors.New("rollback on purpose")

// writeLoad appends total events from 8 writers (random streams, some
// shared, 1-4 events per transaction, one in seven rolled back) plus a
// holder that keeps a transaction open while the others commit. It
// returns the ids committed.
func writeLoad(t *testing.T, store *eventfold.Store[*sql.Tx], total int64) map[string]bool {
	ctx := context.Background()
	var (
		mu        sync.Mutex
		committed = map[string]bool{}
		written   atomic.Int64
		wg        sync.WaitGroup
	)
	types := []string{"Opened", "Deposited", "Withdrawn"}
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for written.Load() < total && !t.Failed() {
				stream := fmt.Sprintf("acct-%d.%d", w, rng.IntN(20))
				if rng.IntN(5) == 0 {
					stream = fmt.Sprintf("shared-%d", rng.IntN(3))
				}
				n := 1 + rng.IntN(4)
				evs := make([]eventfold.EventData, n)
				for i := range evs {
					evs[i] = eventfold.EventData{Type: types[rng.IntN(3)], Data: data(map[string]int{"w": w, "i": i}),
						Metadata: data(map[string]string{"correlation_id": "c-" + strconv.Itoa(w), "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})}
				}
				rollback := rng.IntN(7) == 0
				var out []eventfold.Event
				err := store.InTx(ctx, func(tx *sql.Tx) (err error) {
					out, err = store.AppendTx(ctx, tx, stream, eventfold.Any, evs...)
					if err == nil && rollback {
						err = errRollback
					}
					return err
				})
				switch {
				case err == nil:
					mu.Lock()
					for _, e := range out {
						committed[e.ID] = true
					}
					mu.Unlock()
					written.Add(int64(n))
				case errors.Is(err, errRollback) || errors.Is(err, eventfold.ErrTransient):
				default:
					t.Errorf("writer %d: %v", w, err)
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 3 {
			time.Sleep(100 * time.Millisecond)
			drv := store.Driver()
			tx, err := drv.Begin(ctx)
			if err != nil {
				t.Errorf("holder begin: %v", err)
				return
			}
			out, err := store.AppendTx(ctx, tx, "holder", eventfold.Any, eventfold.EventData{Type: "Held", Data: data(i)})
			if err != nil {
				_ = drv.Rollback(ctx, tx)
				t.Errorf("holder append: %v", err)
				return
			}
			time.Sleep(300 * time.Millisecond)
			if err := drv.Commit(ctx, tx); err != nil {
				t.Errorf("holder commit: %v", err)
				return
			}
			mu.Lock()
			committed[out[0].ID] = true
			mu.Unlock()
		}
	})
	wg.Wait()
	return committed
}

// appendN appends n events in transactions of up to 100, over 50 streams.
func appendN(t testing.TB, store *eventfold.Store[*sql.Tx], n int) {
	t.Helper()
	ctx := context.Background()
	for done := 0; done < n; {
		k := min(100, n-done)
		evs := make([]eventfold.EventData, k)
		for i := range evs {
			evs[i] = eventfold.EventData{Type: "Tick", Data: data(done + i)}
		}
		_, err := store.Append(ctx, fmt.Sprintf("tick-%d", (done/100)%50), eventfold.Any, evs...)
		require.NoError(t, err)
		done += k
	}
}

// streamEvents reads every message of a JetStream stream, in sequence
// order, decoded.
func streamEvents(t testing.TB, nc *nats.Conn, stream string) []eventfold.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	n := int(info.State.Msgs)
	out := make([]eventfold.Event, 0, n)
	if n == 0 {
		return out
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	for len(out) < n {
		batch, err := c.Fetch(min(n-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			ev, err := natsrelay.DecodeEvent(m.Headers(), m.Data())
			require.NoError(t, err)
			out = append(out, ev)
		}
		require.NoError(t, batch.Error())
	}
	return out
}

// waitStream waits until the stream holds want messages.
func waitStream(t testing.TB, nc *nats.Conn, stream string, want uint64, within time.Duration) {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	deadline := time.Now().Add(within)
	var got uint64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := js.Stream(ctx, stream)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = st.Info(ctx); err == nil {
				got = info.State.Msgs
			}
		}
		cancel()
		if got >= want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("stream %s holds %d messages after %s, want %d", stream, got, within, want)
}

// checkExactlyOnce checks that the stream holds exactly the committed log,
// each event once, in global position order (which implies per-stream
// order), with the event's fields intact.
func checkExactlyOnce(t testing.TB, log []eventfold.Event, got []eventfold.Event) {
	t.Helper()
	seen := map[string]int{}
	for i, ev := range got {
		seen[ev.ID]++
		require.Equal(t, 1, seen[ev.ID], "event %s (position %d) is in the stream twice", ev.ID, ev.GlobalPosition)
		if i > 0 {
			require.Greater(t, ev.GlobalPosition, got[i-1].GlobalPosition, "stream sequence %d breaks position order", i+1)
		}
	}
	require.Len(t, got, len(log), "the stream holds %d events, the log %d", len(got), len(log))
	for i := range log {
		require.Equal(t, log[i].ID, got[i].ID, "message %d", i+1)
		require.Equal(t, log[i].GlobalPosition, got[i].GlobalPosition)
		require.Equal(t, log[i].StreamID, got[i].StreamID)
		require.Equal(t, log[i].StreamVersion, got[i].StreamVersion)
		require.Equal(t, log[i].Type, got[i].Type)
		require.JSONEq(t, string(log[i].Data), string(got[i].Data))
		require.True(t, log[i].RecordedAt.Equal(got[i].RecordedAt), "recorded at %v vs %v", log[i].RecordedAt, got[i].RecordedAt)
	}
}

// readLog returns the whole committed log, once every committed event is
// readable.
func readLog(t testing.TB, store *eventfold.Store[*sql.Tx]) []eventfold.Event {
	t.Helper()
	ctx := context.Background()
	last, err := store.LastPosition(ctx)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = store.WaitHead(wctx, last)
	require.NoError(t, err)
	var out []eventfold.Event
	from := int64(0)
	for {
		evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: from, Limit: 5000})
		require.NoError(t, err)
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		from = evs[len(evs)-1].GlobalPosition + 1
	}
}

// proxy forwards TCP connections to target; cut closes every connection
// it carries (the relay's client then reconnects through it).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(u, c); u.Close() }()
			go func() { _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
