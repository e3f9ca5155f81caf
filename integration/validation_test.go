package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/orchestrator/httpapi"
	"github.com/eventfold/eventfold/sqldriver"
)

// nestJSON returns a document nested n levels deep (objects and arrays).
func nestJSON(n int) string {
	return strings.Repeat(`{"a":[`, n/2) + strings.Repeat("[", n%2) + "1" + strings.Repeat("]", n%2) + strings.Repeat(`]}`, n/2)
}

// badIdentifiers are refused as any identifier, on every dialect.
var badIdentifiers = []struct{ name, value, reason string }{
	{"empty", "", "must not be empty"},
	{"too long", strings.Repeat("x", eventfold.MaxIdentifierLength+1), "bytes long"},
	{"invalid UTF-8", "bad\xffname", "not valid UTF-8"},
	{"encoded surrogate", "bad\xed\xa0\x80name", "not valid UTF-8"},
	{"NUL", "bad\x00name", "NUL"},
	{"control character", "bad\x01name", "control character"},
	{"tab", "bad\tname", "control character"},
	{"newline", "bad\nname", "control character"},
	{"DEL", "bad\x7fname", "control character"},
	{"zero-width space", "bad\u200bname", "invisible character"},
	{"byte-order mark", "\ufeffbadname", "invisible character"},
	{"only spaces", "   ", "only white space"},
	{"leading space", " badname", "starts with white space"},
	{"trailing space", "badname ", "ends with white space"},
}

// badPayloads are refused as event data, event metadata (wrapped in an
// object) and JSON command payloads, on every dialect.
var badPayloads = []struct{ name, value, reason string }{
	{"NUL escape", `{"s":"a\u0000b"}`, `\u0000`},
	{"NUL escape in a key", `{"a\u0000":1}`, `\u0000`},
	{"lone high surrogate", `{"s":"\ud800"}`, "lone UTF-16 surrogate"},
	{"lone low surrogate", `{"s":"\udc00x"}`, "lone UTF-16 surrogate"},
	{"reversed surrogates", `{"s":"\udc00\ud800"}`, "lone UTF-16 surrogate"},
	{"invalid UTF-8 in a string", "{\"s\":\"a\xffb\"}", "not valid UTF-8"},
	{"encoded surrogate in a string", "{\"s\":\"a\xed\xa0\x80b\"}", "not valid UTF-8"},
	{"too deep", `{"s":` + nestJSON(eventfold.MaxJSONDepth) + `}`, "deeper than"},
	{"9,999 levels", `{"s":` + nestJSON(9998) + `}`, "deeper than"}, // Go's own limit is 10,000
}

// goodValues pass the rules and are stored on every dialect: the limits
// are ones every database accepts.
var (
	goodIdentifiers = []string{"Å-nfc", "A\u030a-nfd", "emoji-😀", "a b", "x" + strings.Repeat("y", eventfold.MaxIdentifierLength-1)}
	goodPayloads    = []string{nestJSON(eventfold.MaxJSONDepth), `{"s":"\ud83d\ude00 \u0001 \uffff 😀"}`, `{"s":"\\u0000"}`}
)

type appendCmd struct {
	Stream   string          `json:"stream"`
	Type     string          `json:"type"`
	Data     json.RawMessage `json:"data"`
	Metadata map[string]any  `json:"metadata"`
}

// TestValidationEverywhere sends every refused identifier and payload
// through the store, the orchestrator, listener, esctl and the HTTP
// endpoint, on every dialect, and checks that each is refused with
// ErrInvalidInput (esctl exit 2, HTTP 400) and that nothing was stored.
func TestValidationEverywhere(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		validationEverywhere(t, d)
	})
}

func validationEverywhere(t *testing.T, d eventfold.Dialect) {
	ctx := context.Background()
	dsn := testdb.DSN(t, d)
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)

	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 1})
	orchestrator.Handle(o, "Append", func(ctx context.Context, tx *sql.Tx, c appendCmd) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: c.Stream, Expected: eventfold.Any, Type: c.Type, Data: c.Data, Metadata: c.Metadata}}, nil
	})
	srv := httptest.NewServer(httpapi.New(o, nil))
	t.Cleanup(srv.Close)
	post := func(t *testing.T, body []byte, key string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/commands/Append", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header["Idempotency-Key"] = []string{key}
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out struct{ Error, Code string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return resp.StatusCode, out.Error
	}
	cli := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		code := esctl.Main(cctx, append([]string{"--dsn", dsn}, args...), &out, &errb, esctl.Options{Getenv: func(string) string { return "" }})
		return code, errb.String()
	}
	refused := func(t *testing.T, err error, reason string) {
		t.Helper()
		require.ErrorIs(t, err, eventfold.ErrInvalidInput)
		require.ErrorContains(t, err, reason)
	}
	nothingStored := func(t *testing.T) {
		t.Helper()
		last, err := store.LastPosition(ctx)
		require.NoError(t, err)
		require.Zero(t, last, "an event was stored")
		cps, err := listener.Checkpoints(ctx, store)
		require.NoError(t, err)
		require.Empty(t, cps, "a checkpoint was stored")
	}
	good := json.RawMessage(`{"n":1}`)
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		return b
	}

	for _, c := range badIdentifiers {
		t.Run("identifier/"+c.name, func(t *testing.T) {
			// The store: stream id and event type.
			_, err := store.Append(ctx, c.value, eventfold.Any, eventfold.EventData{Type: "T", Data: good})
			refused(t, err, "invalid stream id: ")
			refused(t, err, c.reason)
			_, err = store.Append(ctx, "s", eventfold.Any, eventfold.EventData{Type: c.value, Data: good})
			refused(t, err, "invalid event 0 type: ")
			refused(t, err, c.reason)
			_, err = store.ReadStream(ctx, c.value, eventfold.ReadStreamOptions{})
			refused(t, err, c.reason)

			// The orchestrator: command id, correlation id, and the
			// stream and type a handler emits.
			if c.value != "" { // no id: a dispatch without idempotency
				_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Append", Payload: appendCmd{Stream: "s", Type: "T", Data: good}, Envelope: orchestrator.Envelope{ID: c.value}})
				refused(t, err, "invalid command id: ")
				refused(t, err, c.reason)
				require.ErrorIs(t, err, orchestrator.ErrInvalidCommand)
			}
			if c.value != "" {
				_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Append", Payload: appendCmd{Stream: "s", Type: "T", Data: good}, Envelope: orchestrator.Envelope{CorrelationID: c.value}})
				refused(t, err, "invalid correlation id: ")
			}
			_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Append", Payload: appendCmd{Stream: c.value, Type: "T", Data: good}})
			refused(t, err, "invalid stream id: ")
			_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Append", Payload: appendCmd{Stream: "s", Type: c.value, Data: good}})
			refused(t, err, "invalid event 0 type: ")

			// listener: subscription name and lease owner.
			noop := func(context.Context, eventfold.Event) error { return nil }
			_, err = listener.New(store, c.value, noop, nil)
			refused(t, err, "invalid subscription name: ")
			refused(t, err, c.reason)
			_, err = listener.NewTx(store, c.value, func(context.Context, *sql.Tx, eventfold.Event) error { return nil }, nil)
			refused(t, err, "invalid subscription name: ")
			require.ErrorIs(t, listener.SetCheckpoint(ctx, store, c.value, 0), eventfold.ErrInvalidInput)
			_, _, err = listener.Checkpoint(ctx, store, c.value)
			refused(t, err, "invalid subscription name: ")
			require.ErrorIs(t, listener.DeleteCheckpoint(ctx, store, c.value), eventfold.ErrInvalidInput)
			if c.value != "" { // "" picks the default owner
				_, err = listener.New(store, "sub", noop, &listener.Options{Owner: c.value})
				refused(t, err, "invalid lease owner: ")
			}

			// esctl: exit 2 with the reason.
			if c.value != "" { // esctl refuses an empty flag itself
				code, stderr := cli("append", "--stream", c.value, "--type", "T", "--data", `{}`)
				require.Equal(t, esctl.ExitUsage, code, stderr)
				require.Contains(t, stderr, "invalid stream id: ")
				code, stderr = cli("append", "--stream", "s", "--type", c.value, "--data", `{}`)
				require.Equal(t, esctl.ExitUsage, code, stderr)
				require.Contains(t, stderr, "invalid event 0 type: ")
				if !strings.HasPrefix(c.value, "-") {
					code, stderr = cli("subscriptions", "reset", c.value, "--to", "0")
					require.Equal(t, esctl.ExitUsage, code, stderr)
					require.Contains(t, stderr, "invalid subscription name: ")
				}
			}

			// HTTP: 400, through the body and through Idempotency-Key
			// (for what an HTTP header can carry at all).
			if c.name != "invalid UTF-8" && c.name != "encoded surrogate" { // json.Marshal would repair these
				status, msg := post(t, mustJSON(appendCmd{Stream: c.value, Type: "T", Data: good}), "")
				require.Equal(t, http.StatusBadRequest, status, msg)
				require.Contains(t, msg, "invalid ")
				require.Contains(t, msg, c.reason)
			}
			raw := []byte(`{"stream":"` + c.value + `","type":"T","data":{}}`)
			if json.Valid(raw) {
				status, msg := post(t, raw, "")
				require.Equal(t, http.StatusBadRequest, status, msg)
				require.Contains(t, msg, c.reason)
			}
			if headerSafe(c.value) {
				status, msg := post(t, []byte(`{"stream":"s","type":"T","data":{}}`), c.value)
				require.Equal(t, http.StatusBadRequest, status, msg)
				require.Contains(t, msg, "invalid command id: ")
			}
			nothingStored(t)
		})
	}

	for _, c := range badPayloads {
		t.Run("payload/"+c.name, func(t *testing.T) {
			_, err := store.Append(ctx, "s", eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(c.value)})
			refused(t, err, "invalid event 0 data: ")
			refused(t, err, c.reason)
			_, err = store.Append(ctx, "s", eventfold.Any, eventfold.EventData{Type: "T", Data: good, Metadata: json.RawMessage(c.value)})
			refused(t, err, "invalid event 0 metadata: ")
			refused(t, err, c.reason)

			// The orchestrator: raw data a handler emits, and a JSON
			// command (the HTTP body) holding the payload.
			_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Append", Payload: appendCmd{Stream: "s", Type: "T", Data: json.RawMessage(c.value)}, Envelope: orchestrator.Envelope{ID: "cmd-" + c.name}})
			refused(t, err, "invalid event 0 data: ")
			body := []byte(`{"stream":"s","type":"T","data":` + c.value + `}`)
			_, err = o.DispatchJSON(ctx, "Append", body, orchestrator.Envelope{ID: "cmd-json-" + c.name})
			refused(t, err, "invalid command payload: ")
			refused(t, err, c.reason)

			code, stderr := cli("append", "--stream", "s", "--type", "T", "--data", c.value)
			require.Equal(t, esctl.ExitUsage, code, stderr)
			require.Contains(t, stderr, c.reason)
			code, stderr = cli("append", "--stream", "s", "--type", "T", "--data", "{}", "--metadata", c.value)
			require.Equal(t, esctl.ExitUsage, code, stderr)
			require.Contains(t, stderr, c.reason)

			status, msg := post(t, body, "")
			require.Equal(t, http.StatusBadRequest, status, msg)
			require.Contains(t, msg, c.reason)
			nothingStored(t)
		})
	}

	// What passes the rules is stored, and read back, on every dialect.
	t.Run("accepted", func(t *testing.T) {
		for i, id := range goodIdentifiers {
			for _, p := range goodPayloads {
				evs, err := store.Append(ctx, id, eventfold.Any, eventfold.EventData{Type: id, Data: json.RawMessage(p), Metadata: json.RawMessage(p)})
				require.NoError(t, err, "%q %s", id, p)
				got, err := store.ReadStream(ctx, id, eventfold.ReadStreamOptions{From: evs[0].StreamVersion, Limit: 1})
				require.NoError(t, err)
				require.Len(t, got, 1)
				require.Equal(t, id, got[0].StreamID)
				require.Equal(t, id, got[0].Type)
			}
			res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Append", Payload: appendCmd{Stream: id, Type: "T", Data: good}, Envelope: orchestrator.Envelope{ID: id}})
			require.NoError(t, err, "%q", id)
			require.False(t, res.Duplicate, "%q", id)
			require.NoError(t, listener.SetCheckpoint(ctx, store, id, int64(i)))
			_, err = listener.New(store, id, func(context.Context, eventfold.Event) error { return nil }, &listener.Options{Owner: id})
			require.NoError(t, err)
		}
		cps, err := listener.Checkpoints(ctx, store)
		require.NoError(t, err)
		require.Len(t, cps, len(goodIdentifiers))
	})
}

// headerSafe reports whether an HTTP client can send v as a header value
// unchanged (no control characters but tab, no surrounding white space).
func headerSafe(v string) bool {
	if v == "" || strings.TrimSpace(v) != v {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
