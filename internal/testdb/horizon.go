package testdb

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// HoldHorizon opens a PostgreSQL transaction that takes a transaction id
// and stays open, on the server's own database: it holds the read horizon
// (eventfold's head) of every database in the cluster below whatever
// commits after it. Roll it back to end the hold; the test's end does.
func HoldHorizon(t testing.TB) *sql.Tx {
	t.Helper()
	ctx := context.Background()
	other, err := sqldriver.Open(ctx, ServerDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	holder, err := other.DB().BeginTx(ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = holder.Rollback()
		other.Close()
	})
	var xid string
	require.NoError(t, holder.QueryRowContext(ctx, `SELECT pg_current_xact_id()::text`).Scan(&xid))
	return holder
}
