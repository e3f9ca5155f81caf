package eventfold

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestValidateIdentifier pins the one rule set every identifier (stream id,
// event type, command id, subscription name, lease owner) follows.
func TestValidateIdentifier(t *testing.T) {
	for _, ok := range []string{
		"a", "account-42", "Account-42", "billing projector", "Å", "A\u030a", "日本語", "emoji-😀",
		"a\u00a0b", "tab-less", strings.Repeat("x", MaxIdentifierLength),
	} {
		require.NoError(t, ValidateIdentifier("id", ok, 0), "%q", ok)
	}
	for _, c := range []struct{ in, reason string }{
		{"", "must not be empty"},
		{strings.Repeat("x", MaxIdentifierLength+1), "bytes long"},
		{"a\xffb", "not valid UTF-8"},
		{"a\xc0\xafb", "not valid UTF-8"},     // overlong "/"
		{"a\xed\xa0\x80b", "not valid UTF-8"}, // an encoded surrogate
		{"a\x00b", "NUL"},
		{"a\tb", "control character U+0009"},
		{"a\nb", "control character"},
		{"a\x7fb", "control character U+007F"},
		{"a\u0085b", "control character U+0085"},
		{"a\u200bb", "invisible character U+200B"}, // zero-width space
		{"\ufeffa", "invisible character U+FEFF"},  // byte-order mark
		{"a\u202eb", "invisible character U+202E"}, // right-to-left override
		{"a\u2028b", "invisible character U+2028"}, // line separator
		{" ", "only white space"},
		{"   ", "only white space"},
		{"\u3000", "only white space"},
		{" a", "starts with white space"},
		{"a ", "ends with white space"},
		{"a\u00a0", "ends with white space"},
	} {
		err := ValidateIdentifier("event type", c.in, 0)
		require.ErrorIs(t, err, ErrInvalidInput, "%q", c.in)
		require.ErrorContains(t, err, "invalid event type: ", "%q", c.in)
		require.ErrorContains(t, err, c.reason, "%q", c.in)
	}
	require.ErrorContains(t, ValidateIdentifier("x", "abcd", 3), "is 4 bytes long, the limit is 3")
}

// TestValidateJSON pins the payload rules: JSON that every database stores
// as sent.
func TestValidateJSON(t *testing.T) {
	nest := func(n int) string {
		return strings.Repeat(`{"a":[`, n/2) + strings.Repeat("[", n%2) + "1" + strings.Repeat("]", n%2) + strings.Repeat(`]}`, n/2)
	}
	for _, ok := range []string{
		`1`, `null`, `{}`, `"a"`, `"\u0001"`, `"\ud83d\ude00"`, `{"\ud83d\ude00":"\uD83D\uDE00"}`, `"\\u0000"`, `"\\ud800"`,
		`"\"\\"`, `"\\\\"`, `["\\", "\"", "\ud83d\ude00", "x"]`, `{"\ud83d\ude00\ud83d\ude00":"\\u0000\\ud800"}`, `"\uffff"`, `"😀"`, `{"a\"b":"\\"}`, nest(MaxJSONDepth), `"` + strings.Repeat("[", 100) + `"`,
	} {
		require.NoError(t, ValidateJSON("data", []byte(ok)), "%s", ok)
	}
	for _, c := range []struct{ in, reason string }{
		{``, "not valid JSON"},
		{`{`, "not valid JSON"},
		{"\"a\x01\"", "not valid JSON"},
		{"\"a\xffb\"", "not valid UTF-8"},
		{"\"a\xed\xa0\x80\"", "not valid UTF-8"},
		{`"a\u0000b"`, `\u0000`},
		{`{"a\u0000":1}`, `\u0000`},
		{`["x", {"k": "\u0000"}]`, `\u0000`},
		{`"\ud800"`, "lone UTF-16 surrogate"},
		{`"\uDBFFx"`, "lone UTF-16 surrogate"},
		{`"\ud800\n"`, "lone UTF-16 surrogate"},
		{`"\ud800\u0041"`, "lone UTF-16 surrogate"},
		{`"\ud800\ud800\udc00"`, "lone UTF-16 surrogate"},
		{`"\udc00"`, "lone UTF-16 surrogate"},
		{`"\ud800\\"`, "lone UTF-16 surrogate"},
		{`"\ud800\""`, "lone UTF-16 surrogate"},
		{`"\ud83d\ude00x\ud800"`, "lone UTF-16 surrogate"},
		{`["ok", "x\ud800"]`, "lone UTF-16 surrogate"},
		{`"\\\u0000"`, `\u0000`},
		{`"\udc00\ud800"`, "lone UTF-16 surrogate"},
		{`{"\udfff":1}`, "lone UTF-16 surrogate"},
		{nest(MaxJSONDepth + 1), "deeper than 20 levels"},
		{strings.Repeat("[", 10000) + strings.Repeat("]", 10000), "deeper than"},
	} {
		err := ValidateJSON("event 0 data", []byte(c.in))
		require.ErrorIs(t, err, ErrInvalidInput, "%q", c.in)
		require.ErrorContains(t, err, "invalid event 0 data: ", "%q", c.in)
		require.ErrorContains(t, err, c.reason, "%q", c.in)
		var ve *ValidationError
		require.True(t, errors.As(err, &ve))
	}
}

// TestPrepareAppendUsesTheRules checks that Append applies the rules to
// the event type, data and metadata.
func TestPrepareAppendUsesTheRules(t *testing.T) {
	ev := func(typ, data, meta string) EventData {
		return EventData{Type: typ, Data: []byte(data), Metadata: []byte(meta)}
	}
	for _, c := range []struct {
		stream string
		ev     EventData
		want   string
	}{
		{"s ", ev("T", `1`, ``), "invalid stream id: ends with white space"},
		{"s\x00", ev("T", `1`, ``), "invalid stream id: contains a NUL"},
		{"s", ev("   ", `1`, ``), "invalid event 0 type: is only white space"},
		{"s", ev("T\u200b", `1`, ``), "invalid event 0 type: contains the invisible character"},
		{"s", ev("T", `"\u0000"`, ``), "invalid event 0 data: holds the escape"},
		{"s", ev("T", `1`, `{"a":"\ud800"}`), "invalid event 0 metadata: holds a lone"},
		{"s", ev("T", `1`, "{\"a\":\"\xff\"}"), "invalid event 0 metadata: is not valid UTF-8"},
	} {
		_, err := prepareAppend(c.stream, Any, []EventData{c.ev}, Limits{}.withDefaults())
		require.ErrorIs(t, err, ErrInvalidInput)
		require.ErrorContains(t, err, c.want)
	}
}

// BenchmarkValidateJSON measures the payload rules against json.Valid
// alone, on a 1 KiB event.
func BenchmarkValidateJSON(b *testing.B) {
	doc := []byte(`{"account":"NL-42","amount":100,"note":"` + strings.Repeat(`caf\u00e9 😀 `, 60) + `","tags":[{"k":"a"},{"k":"b"}]}`)
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			_ = json.Valid(doc)
		}
	})
	b.Run("ValidateJSON", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			_ = ValidateJSON("data", doc)
		}
	})
}

// FuzzValidateJSON checks that the payload rules never panic on any input
// and that what they accept is JSON whose strings hold no NUL.
func FuzzValidateJSON(f *testing.F) {
	for _, s := range []string{`{"a":"\ud83d\ude00"}`, `"\ud800"`, `["\\", "\""]`, `{"k\u0000":1}`, "\"\xff\"", `[[[[1]]]]`} {
		f.Add([]byte(s))
	}
	var hasNUL func(v any) bool
	hasNUL = func(v any) bool {
		switch v := v.(type) {
		case string:
			return strings.ContainsRune(v, 0)
		case []any:
			for _, e := range v {
				if hasNUL(e) {
					return true
				}
			}
		case map[string]any:
			for k, e := range v {
				if strings.ContainsRune(k, 0) || hasNUL(e) {
					return true
				}
			}
		}
		return false
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ValidateJSON("data", b) != nil {
			return
		}
		var v any
		require.NoError(t, json.Unmarshal(b, &v))
		require.False(t, hasNUL(v), "accepted a NUL: %q", b)
	})
}
