package eventfold

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseExpectedVersion(t *testing.T) {
	for in, want := range map[string]ExpectedVersion{"any": Any, "": Any, "no-stream": NoStream, "exists": StreamExists, "0": Exact(0), "42": Exact(42)} {
		got, err := ParseExpectedVersion(in)
		require.NoError(t, err, "ParseExpectedVersion(%q)", in)
		require.Equal(t, want, got, "ParseExpectedVersion(%q)", in)
		if in != "" {
			require.Equal(t, in, got.String())
		}
	}
	for _, bad := range []string{"-1", "latest", "1.5", "exist"} {
		_, err := ParseExpectedVersion(bad)
		require.ErrorIs(t, err, ErrInvalidInput, "ParseExpectedVersion(%q)", bad)
	}
}

func TestExpectedVersionSatisfied(t *testing.T) {
	cases := []struct {
		e       ExpectedVersion
		current int64
		want    bool
	}{
		{Any, 0, true}, {Any, 9, true},
		{NoStream, 0, true}, {NoStream, 1, false},
		{StreamExists, 0, false}, {StreamExists, 3, true},
		{Exact(0), 0, true}, {Exact(2), 2, true}, {Exact(2), 3, false},
	}
	for _, c := range cases {
		require.Equal(t, c.want, c.e.Satisfied(c.current), "%s.Satisfied(%d)", c.e, c.current)
	}
}

func TestParseDialect(t *testing.T) {
	for in, want := range map[string]Dialect{"postgresql": Postgres, "pgx": Postgres, "mariadb": MySQL, "sqlite3": SQLite, "mssql": SQLServer} {
		got, err := ParseDialect(in)
		require.NoError(t, err, "ParseDialect(%q)", in)
		require.Equal(t, want, got, "ParseDialect(%q)", in)
	}
	_, err := ParseDialect("oracle")
	require.ErrorIs(t, err, ErrUnknownDialect)
}

func TestPrepareAppendDoesNotModifyInput(t *testing.T) {
	in := []EventData{{Type: "T", Data: []byte(`{}`)}}
	out, err := prepareAppend("s", Any, in, Limits{}.withDefaults())
	require.NoError(t, err)
	require.Empty(t, in[0].ID, "caller's event changed: %+v", in[0])
	require.Nil(t, in[0].Metadata, "caller's event changed: %+v", in[0])
	require.NotEmpty(t, out[0].ID, "prepared event lacks an id: %+v", out[0])
	require.Equal(t, "{}", string(out[0].Metadata), "prepared event lacks metadata: %+v", out[0])
	dup := []EventData{{ID: "0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10", Type: "T", Data: []byte(`1`)}, {ID: "0192F0C1-7D3A-7CC1-9A51-1F1F0A7C2B10", Type: "T", Data: []byte(`1`)}}
	_, err = prepareAppend("s", Any, dup, Limits{}.withDefaults())
	require.ErrorIs(t, err, ErrInvalidInput, "same id twice in one append")
}
