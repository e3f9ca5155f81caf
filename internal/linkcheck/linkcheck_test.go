package linkcheck_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/eventfold/eventfold"

// Driver modules by database, as module path prefixes.
var drivers = map[string]string{
	"pgx":    "github.com/jackc/pgx/v5",
	"mysql":  "github.com/go-sql-driver/mysql",
	"sqlite": "modernc.org/sqlite",
	"mssql":  "github.com/microsoft/go-mssqldb",
}

// testOnly lists modules that no program may link: they belong in tests.
var testOnly = []string{
	"github.com/stretchr/testify",
	"github.com/testcontainers/testcontainers-go",
	"github.com/moby/moby",
}

// knownExceptions are imports of a forbidden driver that are allowed for a
// reason written beside them. Each one is an exact edge, importer ->
// driver: the same driver reached through any other package still fails
// the test. When an edge no longer occurs the test says so: delete it
// here. (The orchestrator's MySQL error codes and the listener's pgx LISTEN
// were the last two; issue 10 moved them into the dialects and pgxdriver.)
var knownExceptions = map[edge]string{}

type edge struct {
	importer string // package path
	driver   string // key of drivers
}

// programs: each package and the drivers it may link.
var programs = []struct {
	pkg     string
	allowed []string
}{
	{module + "/internal/linkcheck/pgxonly", []string{"pgx"}},
	{module + "/internal/linkcheck/mysqlonly", []string{"mysql"}},
	{module + "/internal/linkcheck/sqliteonly", []string{"sqlite"}},
	// The building blocks a program starts from link none.
	{module + "/internal/linkcheck/service", nil},
	{module, nil},
	{module + "/sqldriver", nil},
	// Each driver package brings its own driver only.
	{module + "/pgxdriver", []string{"pgx"}},
	{module + "/sqldriver/postgresdriver", []string{"pgx"}},
	{module + "/sqldriver/mysqldriver", []string{"mysql"}},
	{module + "/sqldriver/sqlitedriver", []string{"sqlite"}},
	{module + "/sqldriver/mssqldriver", []string{"mssql"}},
}

type listedPackage struct {
	ImportPath string
	Imports    []string
	Standard   bool
}

// deps runs `go list -deps` on pkg (no tests: what the program links).
func deps(t *testing.T, pkg string) []listedPackage {
	t.Helper()
	// go test puts its own GOROOT/bin first in PATH.
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Standard", pkg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "go list -deps %s: %s", pkg, stderr.String())
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

func driverOf(pkg string) string {
	for name, prefix := range drivers {
		if pkg == prefix || strings.HasPrefix(pkg, prefix+"/") {
			return name
		}
	}
	return ""
}

// TestProgramsLinkOnlyTheirDrivers is the link-weight check of issue 10:
// a program links the drivers of the databases it uses and no others.
func TestProgramsLinkOnlyTheirDrivers(t *testing.T) {
	used := map[edge]bool{}
	for _, prog := range programs {
		name := strings.TrimPrefix(strings.TrimPrefix(prog.pkg, module), "/")
		if name == "" {
			name = "eventfold"
		}
		t.Run(name, func(t *testing.T) {
			allowed := map[string]bool{}
			for _, d := range prog.allowed {
				allowed[d] = true
			}
			var problems []string
			for _, p := range deps(t, prog.pkg) {
				for _, m := range testOnly {
					if p.ImportPath == m || strings.HasPrefix(p.ImportPath, m+"/") {
						problems = append(problems, "links test-only "+p.ImportPath)
					}
				}
				if driverOf(p.ImportPath) != "" {
					continue // a driver's own imports are its business
				}
				for _, imp := range p.Imports {
					d := driverOf(imp)
					if d == "" || allowed[d] {
						continue
					}
					e := edge{p.ImportPath, d}
					if _, known := knownExceptions[e]; known {
						used[e] = true
						t.Logf("known exception: %s imports %s (%s)", p.ImportPath, imp, knownExceptions[e])
						continue
					}
					problems = append(problems, p.ImportPath+" imports "+drivers[d])
				}
			}
			sort.Strings(problems)
			problems = slices.Compact(problems)
			require.Empty(t, problems, "%s must link only %v", prog.pkg, prog.allowed)
		})
	}
	for e, why := range knownExceptions {
		if !used[e] {
			t.Logf("known exception %s -> %s (%s) no longer occurs: delete it from knownExceptions", e.importer, e.driver, why)
		}
	}
}
