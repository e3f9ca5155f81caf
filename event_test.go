package eventfold

import (
	"errors"
	"testing"
)

func TestParseExpectedVersion(t *testing.T) {
	for in, want := range map[string]ExpectedVersion{"any": Any, "": Any, "no-stream": NoStream, "exists": StreamExists, "0": Exact(0), "42": Exact(42)} {
		got, err := ParseExpectedVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseExpectedVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
		if in != "" && got.String() != in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"-1", "latest", "1.5", "exist"} {
		if _, err := ParseExpectedVersion(bad); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("ParseExpectedVersion(%q): want ErrInvalidInput, got %v", bad, err)
		}
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
		if got := c.e.Satisfied(c.current); got != c.want {
			t.Errorf("%s.Satisfied(%d) = %v, want %v", c.e, c.current, got, c.want)
		}
	}
}

func TestParseDialect(t *testing.T) {
	for in, want := range map[string]Dialect{"postgresql": Postgres, "pgx": Postgres, "mariadb": MySQL, "sqlite3": SQLite, "mssql": SQLServer} {
		if got, err := ParseDialect(in); err != nil || got != want {
			t.Errorf("ParseDialect(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseDialect("oracle"); !errors.Is(err, ErrUnknownDialect) {
		t.Errorf("oracle: %v", err)
	}
}

func TestPrepareAppendDoesNotModifyInput(t *testing.T) {
	in := []EventData{{Type: "T", Data: []byte(`{}`)}}
	out, err := prepareAppend("s", Any, in, Limits{}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if in[0].ID != "" || in[0].Metadata != nil {
		t.Fatalf("caller's event changed: %+v", in[0])
	}
	if out[0].ID == "" || string(out[0].Metadata) != "{}" {
		t.Fatalf("prepared event lacks id or metadata: %+v", out[0])
	}
	dup := []EventData{{ID: "0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10", Type: "T", Data: []byte(`1`)}, {ID: "0192F0C1-7D3A-7CC1-9A51-1F1F0A7C2B10", Type: "T", Data: []byte(`1`)}}
	if _, err := prepareAppend("s", Any, dup, Limits{}.withDefaults()); !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("same id twice in one append: %v", err)
	}
}
