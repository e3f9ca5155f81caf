package pgxdriver_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestVersionReadInsideATransactionAsThePool: the store's write check reads
// the version table through the pool (goose's reading: the table is looked
// for in current_schema()) or, for a write inside a caller's pgx.Tx,
// through that transaction. The transaction's reading was SQL of its own
// (to_regclass, which searches the whole search_path), so the two answered
// differently when the version table was not in the first schema of the
// search_path: the pool found no table and let writes through, the
// transaction found a newer version and refused them. Both now read it
// through the one reader (readVersion) and agree.
func TestVersionReadInsideATransactionAsThePool(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	ctx := context.Background()
	admin, err := pgxdriver.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	latest, err := eventfold.LatestSchemaVersion(eventfold.Postgres)
	require.NoError(t, err)
	_, err = admin.Pool().Exec(ctx, `CREATE SCHEMA app`)
	require.NoError(t, err)
	_, err = admin.Pool().Exec(ctx, `INSERT INTO public.eventfold_goose_version (version_id, is_applied) VALUES ($1, true)`, latest+1)
	require.NoError(t, err)

	drv, err := pgxdriver.Open(ctx, dsn+"&search_path=app,public")
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	byPool := eventfold.New(drv, nil).CheckWritable(ctx)

	inTx := eventfold.New(drv, nil) // a new store: its first check is inside tx
	tx, err := drv.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck // read-only test transaction
	_, byTx := inTx.AppendTx(ctx, tx, streamID(t, "v"), eventfold.NoStream, ev("E", `{}`))
	require.Equal(t, errors.Is(byPool, eventfold.ErrSchemaNewer), errors.Is(byTx, eventfold.ErrSchemaNewer),
		"through the pool: %v; inside the transaction: %v", byPool, byTx)
}
