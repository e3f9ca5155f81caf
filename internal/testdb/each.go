package testdb

import (
	"testing"

	"github.com/eventfold/eventfold"
)

// EachDialect runs fn once per dialect (Dialects(): SQLite, PostgreSQL,
// MySQL, SQL Server), each as the subtest t.Run(dialect). A dialect with
// no server is skipped in its subtest before fn runs, or failed when
// EVENTFOLD_REQUIRE names it; the others still run. fn takes its database
// from DSN, EmptyDSN or SQLStore as usual.
func EachDialect(t *testing.T, fn func(t *testing.T, d eventfold.Dialect)) {
	t.Helper()
	EachDialectOf(t, Dialects(), fn)
}

// EachDialectOf is EachDialect for a subject that supports only some
// dialects (the bank example has no SQL Server read models, say).
func EachDialectOf(t *testing.T, dialects []eventfold.Dialect, fn func(t *testing.T, d eventfold.Dialect)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			if d != eventfold.SQLite {
				if server, reason := serverDSN(d); server == "" {
					unavailable(t, d, reason)
				}
			}
			fn(t, d)
		})
	}
}

// WithoutSQLServer lists every dialect but SQL Server, for EachDialectOf
// in suites whose subject does not run on SQL Server.
func WithoutSQLServer() []eventfold.Dialect {
	return []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL}
}
