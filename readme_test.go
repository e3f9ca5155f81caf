package eventfold_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readmeBlocks returns the fenced blocks of README.md in language lang.
func readmeBlocks(t *testing.T, lang string) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	require.NoError(t, err)
	re := regexp.MustCompile("(?s)```" + lang + "\n(.*?)```")
	var out []string
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// exampleRegions returns the README:begin/README:end regions of
// readme_example_test.go, de-indented to the marker's indentation.
func exampleRegions(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("readme_example_test.go")
	require.NoError(t, err)
	regions := map[string]string{}
	var name, indent string
	var cur strings.Builder
	for _, line := range strings.SplitAfter(string(b), "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "// README:begin "):
			name = strings.TrimPrefix(trim, "// README:begin ")
			indent = line[:strings.Index(line, "//")]
			cur.Reset()
		case trim == "// README:end":
			regions[name] = strings.TrimRight(cur.String(), "\n") + "\n"
			name = ""
		case name != "":
			cur.WriteString(strings.TrimPrefix(line, indent))
		}
	}
	return regions
}

// TestREADMESnippets: every Go block of the README is a region of
// readme_example_test.go, whose examples compile and run with checked
// output, and every region is in the README: a snippet cannot drift.
func TestREADMESnippets(t *testing.T) {
	regions := exampleRegions(t)
	require.Len(t, regions, 4)
	blocks := readmeBlocks(t, "go")
	seen := map[string]bool{}
	for _, blk := range blocks {
		found := ""
		for name, r := range regions {
			if r == blk {
				found = name
			}
		}
		require.NotEmpty(t, found, "README Go block not run by readme_example_test.go (copy it from there):\n%s", blk)
		seen[found] = true
	}
	for name := range regions {
		require.True(t, seen[name], "region %q of readme_example_test.go is not in the README", name)
	}
}
