package mssql

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScannedTimesAreRelabelledUTC: go-mssqldb labels DATETIME2 values
// with the connection's location, so a scanned time must be re-labelled
// with utc(), never converted with .UTC() (which would shift it by that
// location's offset). ListCheckpoints used .UTC().
func TestScannedTimesAreRelabelledUTC(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			scanned := map[string]bool{}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if sel, isSel := callee(call, ok); isSel && sel.Sel.Name == "Scan" {
					for _, arg := range call.Args {
						if u, ok := arg.(*ast.UnaryExpr); ok && u.Op == token.AND {
							if id, ok := u.X.(*ast.Ident); ok {
								scanned[id.Name] = true
							}
						}
					}
				}
				return true
			})
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if sel, isSel := callee(call, ok); isSel && sel.Sel.Name == "UTC" {
					if id, ok := sel.X.(*ast.Ident); ok && scanned[id.Name] {
						t.Errorf("%s: %s converts scanned time %s with .UTC(); use utc(%s)", fset.Position(call.Pos()), fn.Name.Name, id.Name, id.Name)
					}
				}
				return true
			})
		}
	}
}

func callee(call *ast.CallExpr, ok bool) (*ast.SelectorExpr, bool) {
	if !ok {
		return nil, false
	}
	sel, isSel := call.Fun.(*ast.SelectorExpr)
	return sel, isSel
}

// TestLogReadsAreLockingReads: ReadAll and Head must read with locks even
// under READ_COMMITTED_SNAPSHOT (see ReadAll's doc): a snapshot read would
// rest on when the engine makes a committer visible, the assumption that
// lost events on MariaDB.
func TestLogReadsAreLockingReads(t *testing.T) {
	t.Parallel()
	require.Contains(t, readAllSQL, "FROM eventfold.events WITH (READCOMMITTEDLOCK)")
	src, err := parser.ParseFile(token.NewFileSet(), "ops.go", nil, 0)
	require.NoError(t, err)
	var headSQL string
	for _, decl := range src.Decls {
		if fn, ok := decl.(*ast.FuncDecl); ok && fn.Name.Name == "Head" {
			ast.Inspect(fn, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && strings.Contains(lit.Value, "MAX(global_position)") {
					headSQL = lit.Value
				}
				return true
			})
		}
	}
	require.Contains(t, headSQL, "FROM eventfold.events WITH (READCOMMITTEDLOCK)")
}
