package esctl

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHelpOnStdoutDefaultsOnce: --help, for esctl and every command, goes
// to stdout (exit 0, nothing on stderr) and states each default once.
func TestHelpOnStdoutDefaultsOnce(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := run(t, Options{}, "", args...)
		require.Equal(t, 0, r.code)
		require.Empty(t, r.stderr, "%v", args)
		require.Contains(t, r.stdout, "Usage:")
	}
	twice := regexp.MustCompile(`\(default[^)]*\) \(default`)
	for _, c := range builtins() {
		r := run(t, Options{}, "", c.Name, "--help")
		require.Equal(t, 0, r.code, c.Name)
		require.Empty(t, r.stderr, c.Name)
		require.Contains(t, r.stdout, "Usage: esctl "+c.Name)
		require.False(t, twice.MatchString(r.stdout), "%s --help states a default twice:\n%s", c.Name, r.stdout)
	}
}

// TestOnePrefix: an error is one line with one program prefix: no
// "esctl: esctl read:" and no "eventfold: ... eventfold:".
func TestOnePrefix(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "p.db")
	mustRun(t, dsn, "migrate", "up")
	mustRun(t, dsn, "append", "--stream", "account-4", "--type", "T", "--data", "{}", "--id", "0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10")
	for _, args := range [][]string{
		{"read", "--bogus"},
		{"read", "--all", "extra"},
		{"append", "--stream", "account-4", "--type", "T", "--data", "{}", "--id", "0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10"},
		{"read", "--stream", ""},
	} {
		r := run(t, Options{}, dsn, args...)
		require.NotEqual(t, 0, r.code, "%v", args)
		require.Equal(t, 1, strings.Count(r.stderr, "esctl"+":"), "%v: %s", args, r.stderr)
		require.NotContains(t, r.stderr, "esctl: esctl")
		require.NotContains(t, r.stderr, "eventfold: ", "%v", args)
		require.Equal(t, 1, strings.Count(r.stderr, "\n"), "%v: one line: %s", args, r.stderr)
	}
}

// TestArchivedSaysWhichFrom: reading into an archived range says which
// --from reads what remains, and that --from works.
func TestArchivedSaysWhichFrom(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 4)
		cut := evs[2].GlobalPosition
		mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", filepath.Join(t.TempDir(), "old.jsonl.gz"))
		for _, args := range [][]string{{"read", "--all"}, {"tail", "--from", "0", "--limit", "1"}} {
			r := run(t, Options{}, dsn, args...)
			require.Equal(t, ExitError, r.code, "%v", args)
			require.Contains(t, r.stderr, "--from "+jsonInt(cut)+" reads what remains", "%v", args)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
		}
		require.Len(t, decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(cut))), 2)
	})
}
