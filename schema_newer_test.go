package eventfold_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// MarkSchemaNewer records in db's version table a migration one above the
// highest this eventfold embeds, as a newer eventfold's Migrate would, and
// returns that version and the highest known.
func markSchemaNewer(t *testing.T, d eventfold.Dialect, db *sql.DB) (have, known int64) {
	t.Helper()
	known, err := eventfold.LatestSchemaVersion(d)
	require.NoError(t, err)
	applied := "1"
	if d == eventfold.Postgres {
		applied = "true"
	}
	_, err = db.Exec(fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, known+1, applied))
	require.NoError(t, err)
	return known + 1, known
}

// TestSchemaNewerThanBinary: a database migrated by a newer eventfold
// (its version table names a migration this binary lacks) is refused for
// writes, whichever append is the Store's first (Append, AppendTx or
// AppendManyTx inside a transaction), and by Migrate and MigrateDown, with
// ErrSchemaNewer naming both versions; reads go on. A Store that checked
// before the schema moved keeps its answer (the check is once per Store).
func TestSchemaNewerThanBinary(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		early := testdb.SQLStore(t, d)
		drv := early.Driver()
		data := eventfold.EventData{Type: "T", Data: json.RawMessage(`{"n":1}`)}
		_, err := early.Append(ctx, "s", eventfold.NoStream, data)
		require.NoError(t, err)

		have, known := markSchemaNewer(t, d, drv.DB())
		requireNewer := func(t *testing.T, err error) {
			t.Helper()
			require.ErrorIs(t, err, eventfold.ErrSchemaNewer)
			require.Contains(t, err.Error(), fmt.Sprintf("at version %d, this eventfold knows versions up to %d", have, known))
			require.Contains(t, err.Error(), "upgrade this program")
		}

		store := eventfold.New(drv, nil)
		_, err = store.Append(ctx, "s", eventfold.Any, data)
		requireNewer(t, err)
		requireNewer(t, store.CheckWritable(ctx))

		// The first check inside a transaction.
		txStore := eventfold.New(drv, nil)
		requireNewer(t, txStore.InTx(ctx, func(tx *sql.Tx) error {
			_, err := txStore.AppendTx(ctx, tx, "s", eventfold.Any, data)
			return err
		}))
		manyStore := eventfold.New(drv, nil)
		requireNewer(t, manyStore.InTx(ctx, func(tx *sql.Tx) error {
			_, err := manyStore.AppendManyTx(ctx, tx, []eventfold.StreamAppend{{StreamID: "s", Expected: eventfold.Any, Events: []eventfold.EventData{data}}})
			return err
		}))

		// Reads go on, and nothing was appended.
		evs, err := store.ReadStream(ctx, "s", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Len(t, evs, 1)
		// (ReadAll is not asserted: on PostgreSQL it stops below the read
		// horizon, which a transaction of another test can hold back.)
		_, err = store.StreamVersion(ctx, "s")
		require.NoError(t, err)
		v, err := store.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Equal(t, have, v)

		// Migrate would find nothing to do; it refuses, as MigrateDown does
		// (this binary has no Down for the newer migration).
		requireNewer(t, store.Migrate(ctx))
		_, err = store.MigrateDown(ctx, true)
		requireNewer(t, err)
		_, err = store.MigrateDownTo(ctx, known, true)
		requireNewer(t, err)
		v, err = store.SchemaVersion(ctx)
		require.NoError(t, err)
		require.Equal(t, have, v, "the version table changed")

		// Checked once per Store: the one that checked before the schema
		// moved still appends (no query per append).
		_, err = early.Append(ctx, "s", eventfold.Any, data)
		require.NoError(t, err)
	})
}

// TestSchemaNewerInMemorySQLite: an in-memory SQLite database lives in a
// pool of one connection; the first check, made by AppendTx inside a
// transaction, must read through that transaction, not wait for a second
// connection.
func TestSchemaNewerInMemorySQLite(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, "sqlite://:memory:")
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	require.NoError(t, store.Migrate(ctx))
	markSchemaNewer(t, eventfold.SQLite, drv.DB())
	store = eventfold.New(drv, nil)
	done := make(chan error, 1)
	go func() {
		done <- store.InTx(ctx, func(tx *sql.Tx) error {
			_, err := store.AppendTx(ctx, tx, "s", eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
			return err
		})
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, eventfold.ErrSchemaNewer)
	case <-time.After(20 * time.Second):
		t.Fatal("AppendTx's first schema check waits for a second connection")
	}
}

// TestSchemaNewerPgx: with pgx (pgx.Tx runs no database/sql queries) the
// first check inside a transaction reads through the pool.
func TestSchemaNewerPgx(t *testing.T) {
	if _, reason := testdb.Server(eventfold.Postgres); reason != "" && !testdb.Required(eventfold.Postgres) {
		t.Skip(reason)
	}
	ctx := context.Background()
	store := testdb.PgxStore(t)
	markSchemaNewer(t, eventfold.Postgres, store.Driver().DB())
	err := store.InTx(ctx, func(tx pgx.Tx) error {
		_, err := store.AppendTx(ctx, tx, "s", eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
		return err
	})
	require.ErrorIs(t, err, eventfold.ErrSchemaNewer)
	_, err = store.Append(ctx, "s", eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
	require.ErrorIs(t, err, eventfold.ErrSchemaNewer)
}
