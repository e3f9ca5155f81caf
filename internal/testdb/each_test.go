package testdb_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestEachDialectOf runs fn once per listed dialect, in a subtest named
// after it, with that dialect.
func TestEachDialectOf(t *testing.T) {
	var ran []eventfold.Dialect
	testdb.EachDialectOf(t, []eventfold.Dialect{eventfold.SQLite}, func(t *testing.T, d eventfold.Dialect) {
		require.Equal(t, "TestEachDialectOf/sqlite", t.Name())
		ran = append(ran, d)
	})
	require.Equal(t, []eventfold.Dialect{eventfold.SQLite}, ran)
	require.Equal(t, []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL}, testdb.WithoutSQLServer())
}
