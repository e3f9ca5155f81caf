package natsrelay_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
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
