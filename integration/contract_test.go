package integration

import (
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract/contracttest"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestContract runs the store/dialect contract's conformance suite on
// every dialect through database/sql, and on PostgreSQL through pgx too.
func TestContract(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			contracttest.Exercise(t, func(t *testing.T) *eventfold.Store[*sql.Tx] { return testdb.SQLStore(t, d) })
		})
	}
	t.Run("postgres-pgx", func(t *testing.T) {
		t.Parallel()
		contracttest.Exercise(t, func(t *testing.T) *eventfold.Store[pgx.Tx] { return testdb.PgxStore(t) })
	})
}
