package orchestrator

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSystemMetadataSameBytesAsMap: the metadata an event gets when only
// the system keys are set is byte for byte what marshalling them as a map
// gives (the form events had before the struct shortcut), for names and
// ids that JSON escapes (HTML characters, quotes, backslashes, U+2028,
// invalid UTF-8) and with or without a correlation id.
func TestSystemMetadataSameBytesAsMap(t *testing.T) {
	o := &Orchestrator[struct{}]{}
	names := []string{"Deposit", `<a href="x">&amp;</a>`, `back\slash "quoted"`, "caf\u00e9 \u2028 \u2029", "bad \xff utf8", "\u65e5\u672c"}
	for _, name := range names {
		for _, corr := range []string{"", "corr-<&>", name} {
			cmd := Command{Name: name, Envelope: Envelope{ID: "id-" + name, CorrelationID: corr}}
			got, err := o.buildEvent(context.Background(), cmd, Emit{Type: "T", Data: map[string]int{"a": 1}})
			require.NoError(t, err)
			c := corr
			if c == "" {
				c = cmd.Envelope.ID
			}
			want, err := json.Marshal(map[string]any{"command": name, "causation_id": cmd.Envelope.ID, "correlation_id": c})
			require.NoError(t, err)
			require.Equal(t, string(want), string(got.Metadata), "name %q, correlation id %q", name, corr)
			require.JSONEq(t, `{"a":1}`, string(got.Data))
		}
	}
	// With caller metadata the map path runs; the system keys still win.
	cmd := Command{Name: "N", Envelope: Envelope{ID: "i", Metadata: map[string]any{"user": "u", "command": "forged"}}}
	got, err := o.buildEvent(context.Background(), cmd, Emit{Type: "T", Data: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.JSONEq(t, `{"causation_id":"i","command":"N","correlation_id":"i","user":"u"}`, string(got.Metadata))
}
