package integration

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigrations checks, per dialect, that the migrations apply, roll all
// the way down and apply again, and never touch a user's own goose table.
func TestMigrations(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		defer drv.Close()
		db := drv.DB()
		// A user's own goose table, with a version eventfold must not see.
		_, err = db.ExecContext(ctx, "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id BIGINT NOT NULL, is_applied INTEGER NOT NULL)")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO goose_db_version (id, version_id, is_applied) VALUES (1, 20240101, 1)")
		require.NoError(t, err)
		store := eventfold.New(drv, nil)
		require.NoError(t, store.Migrate(ctx))
		require.NoError(t, store.Migrate(ctx), "second migrate is a no-op")
		mustAppend(t, store, "m-1", eventfold.NoStream, ev("Migrated", `{}`))

		p, err := eventfold.NewMigrator(d, db)
		require.NoError(t, err)
		status, err := p.Status(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, status, "no migrations found")
		for _, st := range status {
			require.Equal(t, "applied", string(st.State), "migration %s", st.Source.Path)
		}
		_, err = p.DownTo(ctx, 0)
		require.NoError(t, err, "down to 0")
		_, err = store.Head(ctx)
		require.Error(t, err, "events table still there after migrating down")
		_, err = p.Up(ctx)
		require.NoError(t, err, "up again")
		h, err := store.Head(ctx)
		require.NoError(t, err)
		require.Zero(t, h, "head after down and up")
		var n, v int64
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version_id) FROM goose_db_version").Scan(&n, &v))
		require.Equal(t, int64(1), n, "user's goose table changed")
		require.Equal(t, int64(20240101), v, "user's goose table changed")
	})
}

// TestBadDSN checks that an unknown or malformed DSN fails with a clear,
// typed error and never echoes the password.
func TestBadDSN(t *testing.T) {
	ctx := context.Background()
	_, err := sqldriver.Open(ctx, "oracle://scott:tiger@db/orcl")
	require.ErrorIs(t, err, eventfold.ErrUnknownDialect)
	require.NotContains(t, err.Error(), "tiger", "error shows the password")
	_, err = sqldriver.Open(ctx, "just-a-file.db")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.Contains(t, err.Error(), "scheme")
	_, err = sqldriver.Open(ctx, "postgres://ada:s3cret-pw@127.0.0.1:1/none?connect_timeout=2")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cret-pw", "unreachable postgres: error shows the password")
	require.NotContains(t, sqldriver.Redact("mysql://ada:s3cret@host:3306/db"), "s3cret", "Redact kept the password")
}
