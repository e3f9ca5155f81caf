package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// jsonOddities are payloads a database may store differently from how they
// were sent (PostgreSQL's jsonb: last duplicate key wins, keys reordered,
// whitespace dropped, numbers respelled, escapes decoded).
var jsonOddities = []struct{ name, data, metadata string }{
	{"duplicate keys", `{"a":1,"a":2}`, `{"k":"x","k":"y"}`},
	{"key order", `{"zz":1,"b":2,"a":3}`, `{"z":1,"a":2}`},
	{"whitespace", "{ \"a\" :\n [ 1 ,\t2 ] }", "{\n}"},
	{"big numbers", `{"big":1e400,"neg":-0,"f":1.50,"e":1E2,"i":123456789012345678901234567890}`, `{"n":2e-400}`},
	{"unicode escapes", `{"s":"\u00e9\u0041\ud83d\ude00","t":"é\/"}`, `{"\u0061":"\u2028"}`},
	{"not an object", `[3, 1,  2]`, `{}`},
	{"scalar", `  "just a string"  `, `{}`},
}

// TestAppendReturnsWhatReadersRead checks, on every dialect, that the events
// Append and orchestrator Dispatch hand back carry byte for byte the data and
// metadata that ReadStream, ReadAll, a subscription and an idempotent replay
// of the command read later.
func TestAppendReturnsWhatReadersRead(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store := testdb.SQLStore(t, d)
		var appended []eventfold.Event
		for i, c := range jsonOddities {
			evs, err := store.Append(ctx, fmt.Sprintf("odd-%d", i), eventfold.NoStream,
				eventfold.EventData{Type: "Odd", Data: json.RawMessage(c.data), Metadata: json.RawMessage(c.metadata)})
			require.NoError(t, err, c.name)
			appended = append(appended, evs...)
		}

		o := orchestrator.New(store, nil)
		orchestrator.HandleAny(o, "Odd", func(ctx context.Context, _ *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
			var emits []orchestrator.Emit
			for i, c := range jsonOddities {
				emits = append(emits, orchestrator.Emit{Stream: fmt.Sprintf("cmd-%d", i), Type: "Odd", Data: json.RawMessage(c.data)})
			}
			return emits, nil
		})
		res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Odd", Envelope: orchestrator.Envelope{ID: "odd-1"}})
		require.NoError(t, err)
		appended = append(appended, res.Events...)

		byID := map[string]eventfold.Event{}
		for _, e := range appended {
			byID[e.ID] = e
		}
		same := func(t *testing.T, how string, got eventfold.Event) {
			t.Helper()
			want, ok := byID[got.ID]
			require.True(t, ok, "%s: unknown event %s", how, got.ID)
			require.Equal(t, string(want.Data), string(got.Data), "%s: data of %s/%d", how, got.StreamID, got.StreamVersion)
			require.Equal(t, string(want.Metadata), string(got.Metadata), "%s: metadata of %s/%d", how, got.StreamID, got.StreamVersion)
		}

		for _, e := range appended {
			got, err := store.ReadStream(ctx, e.StreamID, eventfold.ReadStreamOptions{})
			require.NoError(t, err)
			require.Len(t, got, 1)
			same(t, "ReadStream", got[0])
		}
		last := appended[len(appended)-1].GlobalPosition
		_, err = store.WaitHead(ctx, last)
		require.NoError(t, err)
		all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
		require.NoError(t, err)
		require.Len(t, all, len(appended))
		for _, e := range all {
			same(t, "ReadAll", e)
		}
		for _, e := range runSubscription(t, store, "odd", last) {
			same(t, "subscription", e)
		}
		again, err := o.Dispatch(ctx, orchestrator.Command{Name: "Odd", Envelope: orchestrator.Envelope{ID: "odd-1"}})
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		for _, e := range again.Events {
			same(t, "idempotent replay", e)
		}
	})
}
