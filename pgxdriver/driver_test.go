package pgxdriver_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

func TestRollbackAfterCommitIsNoop(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, d.Commit(ctx, tx))
	require.NoError(t, d.Rollback(ctx, tx))
	require.NoError(t, d.Rollback(ctx, tx))
}

func TestBeginIsReadCommitted(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, tx) }()
	var iso, ro string
	require.NoError(t, tx.QueryRow(ctx, "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro))
	require.Equal(t, "read committed", iso)
	require.Equal(t, "off", ro)
}

func TestNewNeverClosesCallersPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testdb.SharedDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	defer pool.Close()
	d := pgxdriver.New(pool)
	require.Equal(t, eventfold.Postgres, d.Dialect())
	require.NoError(t, d.DB().PingContext(ctx))
	require.Same(t, d.DB(), d.DB(), "DB is created once")
	require.NoError(t, d.Close())
	require.NoError(t, pool.Ping(ctx), "the caller's pool survives Close")
	require.Error(t, d.DB().PingContext(ctx), "the *sql.DB is closed by Close")
}

func TestOpenOwnsItsPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d, err := pgxdriver.Open(ctx, testdb.SharedDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	s := eventfold.New(d, nil)
	require.NoError(t, s.Migrate(ctx), "already migrated: a no-op")
	_, err = s.Append(ctx, streamID(t, "s"), eventfold.NoStream, ev("Opened", `1`))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.Error(t, d.Pool().Ping(ctx), "Open's pool is closed by Close")

	_, err = pgxdriver.Open(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	require.Error(t, err)
}

// TestMigrateDownAndUp needs a database of its own: it drops the schema.
func TestMigrateDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testdb.EmptyDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	d := pgxdriver.New(pool)
	t.Cleanup(func() { _ = d.Close() })
	s := eventfold.New(d, nil)
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.Migrate(ctx), "migrating twice is a no-op")

	exists := func() bool {
		var ok bool
		require.NoError(t, pool.QueryRow(ctx, "SELECT to_regclass('eventfold.events') IS NOT NULL AND to_regprocedure('eventfold.append_events(text,bigint,uuid[],text[],jsonb[],jsonb[])') IS NOT NULL").Scan(&ok))
		return ok
	}
	require.True(t, exists())
	_, err = s.Append(ctx, "before-down", eventfold.NoStream, ev("X", `1`))
	require.NoError(t, err)

	p, err := eventfold.NewMigrator(eventfold.Postgres, d.DB())
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)
	require.False(t, exists())
	var schemas int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = 'eventfold'").Scan(&schemas))
	require.Zero(t, schemas, "the down migration drops the schema")

	_, err = p.Up(ctx)
	require.NoError(t, err)
	require.True(t, exists())
	out, err := s.Append(ctx, "before-down", eventfold.NoStream, ev("X", `1`))
	require.NoError(t, err, "a fresh log after down and up")
	require.Equal(t, int64(1), out[0].StreamVersion)
	err = s.InTx(ctx, func(tx pgx.Tx) error {
		_, err := s.AppendTx(ctx, tx, "before-down", eventfold.Exact(1), ev("Y", `1`))
		return err
	})
	require.NoError(t, err)
}
