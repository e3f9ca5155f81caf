package mssql

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

func TestEncodeEventsEmbedsJSONInOrder(t *testing.T) {
	t.Parallel()
	events := []eventfold.EventData{
		{ID: "0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d90", Type: "AccountOpened", Data: json.RawMessage(`{"owner": "Ada <ada@example.com>", "n": 1.50}`), Metadata: json.RawMessage(`{"actor":"a&b"}`)},
		{ID: "0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d91", Type: "Noted", Data: json.RawMessage(`"just a string"`), Metadata: json.RawMessage(`{}`)},
		{ID: "0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d92", Type: "Nothing", Data: json.RawMessage(`null`)},
	}
	got, err := encodeEvents(events)
	require.NoError(t, err)

	// HTML-sensitive characters reach the server as written, not as \u003c.
	require.Contains(t, got, `Ada <ada@example.com>`)
	require.Contains(t, got, `"a&b"`)
	require.False(t, strings.HasSuffix(got, "\n"), "no trailing newline from json.Encoder")

	var decoded []map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(got), &decoded))
	require.Len(t, decoded, 3)
	for i, e := range events {
		require.JSONEq(t, `"`+e.ID+`"`, string(decoded[i]["id"]), "event %d id", i)
		require.JSONEq(t, `"`+e.Type+`"`, string(decoded[i]["type"]), "event %d type", i)
		// Embedded as JSON, not as a JSON string holding JSON.
		require.JSONEq(t, string(e.Data), string(decoded[i]["data"]), "event %d data", i)
	}
	require.JSONEq(t, `{"actor":"a&b"}`, string(decoded[0]["metadata"]))
	require.JSONEq(t, `{}`, string(decoded[1]["metadata"]))
	_, hasMeta := decoded[2]["metadata"]
	require.False(t, hasMeta, "empty metadata is left out, so the procedure stores {}")
	// Numbers keep their written form (1.50, not 1.5).
	require.Contains(t, string(decoded[0]["data"]), `1.50`)
}

func TestEncodeEventsRejectsInvalidJSON(t *testing.T) {
	t.Parallel()
	_, err := encodeEvents([]eventfold.EventData{{ID: "x", Type: "T", Data: json.RawMessage(`{broken`)}})
	require.Error(t, err)
}
