package natsrelay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

// TestAttackRelayEventOverMaxPayload: an event eventfold accepts (data +
// metadata under the 1 MiB default limit) makes a NATS message over the
// server's max_payload (1 MB by default), because the metadata travels
// again in a header. Retrying cannot cure it: Run must stop with an error
// matching eventfold.ErrInvalidInput that names the position, publish
// nothing from that event on, and keep the checkpoint before it.
func TestAttackRelayEventOverMaxPayload(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	require.NoError(t, store.Migrate(context.Background()))
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	ctx := context.Background()
	appendN(t, store, 3)
	limit := int(nc.MaxPayload())
	md := data(map[string]string{"pad": strings.Repeat("m", 1000)})
	big := data(strings.Repeat("x", limit-len(md)-200)) // under eventfold's limit, over NATS's with the headers
	require.LessOrEqual(t, len(big)+len(md), store.Limits().MaxEventSize)
	out, err := store.Append(ctx, "big-1", eventfold.NoStream, eventfold.EventData{Type: "Big", Data: big, Metadata: md})
	require.NoError(t, err)
	appendN(t, store, 2)
	r, err := natsrelay.New(store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix,
		Listener: listener.Options{BatchSize: 1, PollInterval: 20 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}})
	require.NoError(t, err)
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err = r.Run(rctx)
	require.Error(t, err, "Run retried an event NATS can never take until its context ended")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.Contains(t, err.Error(), "max_payload")
	require.NoError(t, rctx.Err(), "Run stopped only when its context ended")
	got := streamEvents(t, nc, stream)
	require.Len(t, got, 3)
	pos, _, err := listener.Checkpoint(ctx, store, r.Name())
	require.NoError(t, err)
	require.Less(t, pos, out[0].GlobalPosition)
}

// dbaAppend appends one event the way a DBA's script would, through
// eventfold.append_events, bypassing the library's validation.
func dbaAppend(t *testing.T, db *sql.DB, streamID, typ, metadata string) {
	t.Helper()
	_, err := db.ExecContext(context.Background(),
		`SELECT * FROM eventfold.append_events($1, -1, ARRAY[$2::uuid], ARRAY[$3::text], ARRAY['{}'::jsonb], ARRAY[$4::jsonb])`,
		streamID, uuid.NewString(), typ, metadata)
	require.NoError(t, err)
}

// TestAttackRelayHostileIdentifiersFromDBA: PostgreSQL checks only the
// length of stream ids and types, so a DBA's script calling
// eventfold.append_events can store what the library refuses: line breaks,
// leading and trailing white space. A NATS header cannot carry those
// (line breaks become spaces, the ends are trimmed): the consumer would
// receive another stream id, silently. The relay must refuse the event
// (stop with ErrInvalidInput) rather than publish a message whose headers
// decode to a different event.
func TestAttackRelayHostileIdentifiersFromDBA(t *testing.T) {
	for _, c := range []struct{ name, stream, typ string }{
		{"crlf in stream id", "acct-1\r\nNats-Msg-Id: forged", "T"},
		{"trailing space in stream id", "acct-1 ", "T"},
		{"leading tab in type", "acct-1", "\tT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := testdb.SQLStore(t, eventfold.Postgres)
			ctx := context.Background()
			require.NoError(t, store.Migrate(ctx))
			nc := connect(t, sharedURL(t))
			stream, prefix := uniqueStream(t, nc)
			createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
			appendN(t, store, 2)
			dbaAppend(t, store.Driver().DB(), c.stream, c.typ, `{}`)
			r, err := natsrelay.New(store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix,
				Listener: listener.Options{BatchSize: 1, PollInterval: 20 * time.Millisecond, RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond}})
			require.NoError(t, err)
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			err = r.Run(rctx)
			got := streamEvents(t, nc, stream)
			for _, ev := range got {
				if ev.Type == strings.TrimSpace(c.typ) && !strings.HasPrefix(ev.StreamID, "s") {
					t.Errorf("published as stream id %q type %q; stored as %q %q", ev.StreamID, ev.Type, c.stream, c.typ)
				}
			}
			require.ErrorIs(t, err, eventfold.ErrInvalidInput)
			require.Len(t, got, 2)
		})
	}
}

// TestAttackDecodeEventRejectsBadMetadata: DecodeEvent hands the metadata
// header through as json.RawMessage; a forged message with a metadata
// header that is not a JSON object must be refused, not returned as an
// Event whose Metadata breaks json.Marshal in the handler.
func TestAttackDecodeEventRejectsBadMetadata(t *testing.T) {
	h := nats.Header{}
	h.Set(natsrelay.HeaderPosition, "1")
	h.Set(natsrelay.HeaderStreamVersion, "1")
	h.Set(natsrelay.HeaderStreamID, "s")
	h.Set(natsrelay.HeaderEventID, uuid.NewString())
	h.Set(natsrelay.HeaderEventType, "T")
	h.Set(natsrelay.HeaderRecordedAt, time.Now().UTC().Format(time.RFC3339Nano))
	ev, err := natsrelay.DecodeEvent(h, []byte(`{}`))
	require.NoError(t, err)
	_, err = json.Marshal(ev)
	require.NoError(t, err)
	for _, md := range []string{`{"a":`, `not json`, `[1]`} {
		h.Set(natsrelay.HeaderMetadata, md)
		ev, err := natsrelay.DecodeEvent(h, []byte(`{}`))
		if err == nil {
			_, merr := json.Marshal(ev)
			t.Errorf("metadata %q: decoded (json.Marshal of it: %v)", md, merr)
			continue
		}
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, md)
	}
}

// TestAttackConsumeAfterDurableDeleted: an operator deletes the durable
// consumer while Consume runs (nats consumer rm). Consume must not return
// nil as if its context had ended (the application would believe it was
// told to stop), and must not go silent: it either reports an error or
// carries on with a recreated durable and hands over what follows.
func TestAttackConsumeAfterDurableDeleted(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	require.NoError(t, store.Migrate(context.Background()))
	url := sharedURL(t)
	nc := connect(t, url)
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix})
	appendN(t, store, 5)
	var got sync.Map
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	cnc := connect(t, url)
	go func() {
		done <- natsrelay.Consume(ctx, cnc, natsrelay.ConsumerOptions{Stream: stream, Durable: "doomed",
			RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond},
			func(_ context.Context, ev eventfold.Event) error { got.Store(ev.GlobalPosition, true); return nil })
	}()
	count := func() (n int) {
		got.Range(func(any, any) bool { n++; return true })
		return n
	}
	require.Eventually(t, func() bool { return count() == 5 }, 30*time.Second, 20*time.Millisecond)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteConsumer(context.Background(), stream, "doomed"))
	appendN(t, store, 5)
	deadline := time.After(20 * time.Second)
	for count() < 10 {
		select {
		case err := <-done:
			require.ErrorIs(t, err, natsrelay.ErrConsumerGone, "Consume returned nil while its context was live, after its durable was deleted")
			require.NoError(t, stop())
			return
		case <-deadline:
			t.Fatalf("Consume neither reported the deleted durable nor consumed what followed (%d of 10 events)", count())
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, stop())
}

// TestAttackRelayStreamRecreatedWhileRunning: an operator deletes the
// stream and creates it again (new limits, say) while the relay runs, then
// purges it. What the relay had published is gone with the old stream;
// everything appended afterwards must reach the new one, once, in order.
func TestAttackRelayStreamRecreatedWhileRunning(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx))
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.FileStorage)
	_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix})
	appendN(t, store, 5)
	waitStream(t, nc, stream, 5, 30*time.Second)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, js.DeleteStream(ctx, stream))
	createStream(t, nc, stream, prefix, jetstream.FileStorage)
	head, err := store.LastPosition(ctx)
	require.NoError(t, err)
	appendN(t, store, 5)
	waitStream(t, nc, stream, 5, 30*time.Second)
	st, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	require.NoError(t, st.Purge(ctx))
	appendN(t, store, 5)
	waitStream(t, nc, stream, 5, 30*time.Second) // the 5 appended after the purge
	require.NoError(t, stop())
	log := readLog(t, store)
	var after []eventfold.Event
	for _, ev := range log {
		if ev.GlobalPosition > head {
			after = append(after, ev)
		}
	}
	require.Len(t, after, 10)
	checkExactlyOnce(t, after[5:], streamEvents(t, nc, stream))
}

// TestAttackTwoRelayNamesOneStream: an operator starts a second relay on
// the same stream under another name (esctl relay nats --name ...). The
// expected-last-sequence chain must keep the stream exactly once, in order.
func TestAttackTwoRelayNamesOneStream(t *testing.T) {
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx], _ string) {
		nc := connect(t, sharedURL(t))
		stream, prefix := uniqueStream(t, nc)
		createStream(t, nc, stream, prefix, jetstream.FileStorage)
		_, stopA := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Name: "relay-a", Listener: listener.Options{BatchSize: 7}})
		_, stopB := runRelay(t, store, connect(t, sharedURL(t)), natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Name: "relay-b", Listener: listener.Options{BatchSize: 5}})
		writeLoad(t, store, int64(envInt("NATSRELAY_TEST_EVENTS", 2000)))
		log := readLog(t, store)
		waitStream(t, nc, stream, uint64(len(log)), 2*time.Minute)
		require.NoError(t, stopA())
		require.NoError(t, stopB())
		checkExactlyOnce(t, log, streamEvents(t, nc, stream))
	})
}

// TestAttackRelayStreamSubjectsFixedLive: the stream's subjects do not
// cover the relay's prefix (an operator's typo): every publish fails and
// the relay retries, publishing nothing elsewhere; once the operator
// fixes the stream's subjects it resumes, exactly once, in order.
func TestAttackRelayStreamSubjectsFixedLive(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx))
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cfg := jetstream.StreamConfig{Name: stream, Subjects: []string{prefix + "_typo.>"}, Storage: jetstream.MemoryStorage}
	_, err = js.CreateStream(ctx, cfg)
	require.NoError(t, err)
	r, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix})
	appendN(t, store, 5)
	require.Eventually(t, func() bool { return r.Stats().Subscription.LastError != "" }, 30*time.Second, 20*time.Millisecond)
	require.Empty(t, streamEvents(t, nc, stream))
	cfg.Subjects = []string{prefix + ".>"}
	_, err = js.UpdateStream(ctx, cfg)
	require.NoError(t, err)
	waitStream(t, nc, stream, 5, 30*time.Second)
	require.NoError(t, stop())
	checkExactlyOnce(t, readLog(t, store), streamEvents(t, nc, stream))
}

// TestAttackRelayHostileButValidIdentifiers: the longest stream ids and
// types the library accepts, made of what NATS forbids in a subject ('.',
// '*', '>', spaces inside) or of non-ASCII letters, relay under escaped
// subjects (three times longer, still under NATS's 4 KB control line) and
// decode back unchanged, partitioned too.
func TestAttackRelayHostileButValidIdentifiers(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx))
	nc := connect(t, sharedURL(t))
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	ids := []string{
		strings.Repeat(".", eventfold.MaxStreamIDLength),
		strings.Repeat("*>", eventfold.MaxStreamIDLength/2),
		"a" + strings.Repeat(" %", (eventfold.MaxStreamIDLength-2)/2) + "z",
		strings.Repeat("事", eventfold.MaxStreamIDLength/3),
		"acct-1",
	}
	types := []string{strings.Repeat(">", eventfold.MaxTypeLength), "Ünïcødé 事件", "a.b.c", "%2E", "T"}
	var want []eventfold.Event
	for i, id := range ids {
		out, err := store.Append(ctx, id, eventfold.Any, eventfold.EventData{Type: types[i], Data: data(i)})
		require.NoError(t, err)
		want = append(want, out...)
	}
	_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Subject: natsrelay.PartitionedSubject(4)})
	waitStream(t, nc, stream, uint64(len(want)), 30*time.Second)
	require.NoError(t, stop())
	got := streamEvents(t, nc, stream)
	require.Len(t, got, len(want))
	for i := range want {
		require.Equal(t, want[i].StreamID, got[i].StreamID)
		require.Equal(t, want[i].Type, got[i].Type)
		require.Equal(t, want[i].GlobalPosition, got[i].GlobalPosition)
	}
}

// TestAttackConsumeRetryOutlivesAckWait: a handler retrying with a backoff
// longer than AckWait (the defaults allow it: RetryMax 30s, AckWait 30s)
// must keep JetStream from redelivering the event to another process on
// the same durable (the failover setup Consume documents): otherwise that
// process handles it too, and goes on to the next events while the first
// one is still retrying — a duplicate, and per-stream order broken.
func TestAttackConsumeRetryOutlivesAckWait(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx))
	url := sharedURL(t)
	nc := connect(t, url)
	stream, prefix := uniqueStream(t, nc)
	createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
	_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix})
	appendN(t, store, 3)
	waitStream(t, nc, stream, 3, 30*time.Second)
	require.NoError(t, stop())

	var mu sync.Mutex
	var handled []string // "<consumer>:<position>" of each success
	failsLeft := 2       // the first two calls fail, whoever makes them
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, who := range []string{"A", "B"} {
		cnc := connect(t, url)
		wg.Go(func() {
			err := natsrelay.Consume(cctx, cnc, natsrelay.ConsumerOptions{Stream: stream, Durable: "failover",
				AckWait: time.Second, RetryMin: 2500 * time.Millisecond, RetryMax: 2500 * time.Millisecond},
				func(_ context.Context, ev eventfold.Event) error {
					mu.Lock()
					defer mu.Unlock()
					if failsLeft > 0 {
						failsLeft--
						return errors.New("not yet")
					}
					handled = append(handled, fmt.Sprintf("%s:%d", who, ev.GlobalPosition))
					return nil
				})
			require.NoError(t, err)
		})
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) >= 3
	}, 60*time.Second, 20*time.Millisecond)
	time.Sleep(3 * time.Second) // room for a late duplicate
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	var positions []string
	for _, h := range handled {
		positions = append(positions, h[2:])
	}
	require.Len(t, handled, 3, "each event handled once: %v", handled)
	require.IsIncreasing(t, positions, "in order: %v", handled)
}
