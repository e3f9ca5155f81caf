package eventfold_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// withMaxOpen adds max_open_conns=n to an eventfold DSN.
func withMaxOpen(dsn string, n int) string {
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return fmt.Sprintf("%s%smax_open_conns=%d", dsn, sep, n)
}

// hangGuard is the context of a step that hung for ever on a small pool:
// the deadline turns the hang into a failure (it is no timing assertion:
// each step takes well under a second).
func hangGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestMigrateOnSmallPools: with max_open_conns=1, Migrate on MariaDB hung
// for ever: goose takes a connection to migrate on, then its lock table's
// Lock asked the pool for a second one. Migrating up, down and up again
// works on pools of one and two connections on every dialect.
func TestMigrateOnSmallPools(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		for _, n := range []int{1, 2} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				ctx := hangGuard(t)
				drv, err := sqldriver.Open(ctx, withMaxOpen(testdb.EmptyDSN(t, d), n))
				require.NoError(t, err)
				defer drv.Close()
				require.Equal(t, n, drv.DB().Stats().MaxOpenConnections)
				store := eventfold.New(drv, nil)
				require.NoError(t, store.Migrate(ctx))
				_, err = store.Append(ctx, "s-1", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
				require.NoError(t, err)
				latest, err := eventfold.LatestSchemaVersion(d)
				require.NoError(t, err)
				res, err := store.MigrateDown(ctx, false)
				require.NoError(t, err)
				require.Equal(t, latest, res.Source.Version)
				require.NoError(t, store.Migrate(ctx))
				v, err := store.SchemaVersion(ctx)
				require.NoError(t, err)
				require.Equal(t, latest, v)
			})
		}
	})
}

// TestMigrateWaitForLockEndsWithCtxMySQL: Migrate waiting for the MySQL
// migration lock (GET_LOCK, held here by another session) on a
// one-connection pool ends when its context is cancelled, having applied
// nothing; once the lock is free it migrates.
func TestMigrateWaitForLockEndsWithCtxMySQL(t *testing.T) {
	guard := hangGuard(t)
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	other, err := sqldriver.Open(guard, dsn)
	require.NoError(t, err)
	defer other.Close()
	holder, err := other.DB().Conn(guard)
	require.NoError(t, err)
	defer holder.Close()
	var got int
	require.NoError(t, holder.QueryRowContext(guard, `SELECT GET_LOCK(CONCAT('eventfold.migrate.', SHA1(DATABASE())), 0)`).Scan(&got))
	require.Equal(t, 1, got)

	drv, err := sqldriver.Open(guard, withMaxOpen(dsn, 1))
	require.NoError(t, err)
	defer drv.Close()
	store := eventfold.New(drv, nil)
	ctx, cancel := context.WithCancel(guard)
	done := make(chan error, 1)
	go func() { done <- store.Migrate(ctx) }()
	for {
		var waiting int
		require.NoError(t, other.DB().QueryRowContext(guard, `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE 'SELECT GET_LOCK(%'`).Scan(&waiting))
		if waiting > 0 {
			break
		}
	}
	cancel()
	err = <-done
	require.ErrorIs(t, err, context.Canceled)
	v, err := store.SchemaVersion(guard)
	require.NoError(t, err)
	require.Zero(t, v, "nothing applied")

	_, err = holder.ExecContext(guard, `DO RELEASE_LOCK(CONCAT('eventfold.migrate.', SHA1(DATABASE())))`)
	require.NoError(t, err)
	require.NoError(t, store.Migrate(guard))
}
