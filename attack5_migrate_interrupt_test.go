package eventfold_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack5MigrateInterruptedMySQL: a migration cancelled midway (esctl
// migrate up and Ctrl-C) on MariaDB. Its DDL commits statement by
// statement, so the cancellation left 00015 half-applied (its first ALTER
// done, its version unrecorded) and every later migrate up failed with
// "Error 1091: Can't DROP CONSTRAINT `eventfold_events_position_positive`;
// check that it exists" (seen with the real binary and SIGINT, and here on
// main). A started migration now finishes, the next one does not start,
// and migrate up goes on from there.
func TestAttack5MigrateInterruptedMySQL(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	conn, d, err := sqldriver.Connector(dsn)
	require.NoError(t, err)
	ictx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	// The interrupt comes as 00015's second statement starts.
	c := &testdb.CancelOnStatement{Connector: conn, Match: "MODIFY global_position", Cancel: interrupt}
	drv, err := sqldriver.New(sql.OpenDB(c), d)
	require.NoError(t, err)
	defer drv.Close()
	store := eventfold.New(drv, nil)
	p, err := eventfold.NewMigrator(d, drv.DB())
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 14)
	require.NoError(t, err)

	err = store.Migrate(ictx)
	require.ErrorIs(t, err, context.Canceled)
	require.True(t, c.Seen(), "the interrupt came during 00015")
	v, verr := store.SchemaVersion(ctx)
	require.NoError(t, verr)
	require.Equal(t, int64(15), v, "00015 finished, nothing after it started")
	require.Contains(t, err.Error(), "stopped before migration 16, at version 15")

	require.NoError(t, store.Migrate(ctx), "migrate up goes on")
	latest, err := eventfold.LatestSchemaVersion(d)
	require.NoError(t, err)
	v, err = store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, v)
	evs, err := store.Append(ctx, "s-1", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
	require.NoError(t, err)
	require.Equal(t, int64(1), evs[0].GlobalPosition)
}
