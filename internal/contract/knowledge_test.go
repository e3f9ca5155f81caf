package contract_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Database knowledge (error codes, savepoint statements, NOTIFY/LISTEN,
// driver error types) lives in the dialects and drivers only. These are
// the directories allowed to hold it, relative to the repository root.
var knowledgeAllowed = []string{
	"internal/dialect/",
	"internal/dbsqlc/", // generated from queries/ per dialect
	"pgxdriver/",
	"sqldriver/",
	"internal/testdb/", // creates and drops the test databases
	"examples/",        // user code with its own read-model SQL
}

// knowledgeStrings are string literals that give database knowledge away.
var knowledgeStrings = regexp.MustCompile(`(?i:\bsavepoint\b|\bsave\s+transaction\b|\brollback\s+(to|transaction)\b|pg_notify|pg_listen|\b(create|drop)\s+trigger\b)|^\s*(NOTIFY|LISTEN|UNLISTEN)\b|\b(40001|40P01|55P03|57P01|23505)\b`)

// knowledgeNames are identifiers of the drivers' error types and codes.
var knowledgeNames = map[string]bool{"SQLState": true, "SQLErrorNumber": true, "MySQLError": true, "PgError": true}

// driverImports are the database drivers a library package must not
// link: only the dialects, the drivers and the programs (esctl, bench,
// tests) may.
var driverImports = []string{"github.com/jackc/pgx", "github.com/go-sql-driver/mysql", "github.com/microsoft/go-mssqldb", "modernc.org/sqlite"}

// programs may import drivers (they open connections) but still must not
// hold database knowledge.
var programs = []string{"cmd/", "esctl/", "bench/", "integration/"}

func TestNoDatabaseKnowledgeOutsideDialects(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	var findings []string
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || d.Name() == "tools" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || hasPrefix(rel, knowledgeAllowed) {
			return nil
		}
		findings = append(findings, knowledgeIn(t, path, rel)...)
		checked++
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, checked, 50, "the walk found the repository's Go files")
	require.Empty(t, findings, "database knowledge outside internal/dialect/*, pgxdriver and sqldriver")
}

func knowledgeIn(t *testing.T, path, rel string) []string {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	var out []string
	at := func(n ast.Node, what string) {
		out = append(out, fset.Position(n.Pos()).String()+": "+what)
	}
	if !hasPrefix(rel, programs) {
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			for _, d := range driverImports {
				if p == d || strings.HasPrefix(p, d+"/") {
					at(imp, "imports the driver "+p)
				}
			}
		}
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.BasicLit:
			if n.Kind == token.STRING {
				if s, err := strconv.Unquote(n.Value); err == nil && knowledgeStrings.MatchString(s) {
					at(n, "string "+n.Value)
				}
			}
		case *ast.Ident:
			if knowledgeNames[n.Name] {
				at(n, "names "+n.Name)
			}
		}
		return true
	})
	return out
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
