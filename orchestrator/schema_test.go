package orchestrator_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestDispatchWithoutSchema: on a database where eventfold's schema was
// never installed, Dispatch says so, as Append does, instead of the
// driver's "no such table" / "relation does not exist".
func TestDispatchWithoutSchema(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		store := eventfold.New(drv, nil)
		defer store.Close()
		_, appendErr := store.Append(ctx, "s-1", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
		require.ErrorIs(t, appendErr, eventfold.ErrSchemaNotInstalled)

		o := orchestrator.New(store, nil)
		orchestrator.HandleAny(o, "Do", func(ctx context.Context, tx *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
			return []orchestrator.Emit{{Stream: "s-1", Expected: eventfold.Any, Type: "Done", Data: map[string]int{"n": 1}}}, nil
		})
		for _, env := range []orchestrator.Envelope{{}, {ID: "cmd-1"}} {
			_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Do", Payload: map[string]int{}, Envelope: env})
			require.ErrorIs(t, err, eventfold.ErrSchemaNotInstalled, "envelope %+v", env)
			require.Equal(t, appendErr.Error(), err.Error(), "envelope %+v", env)
		}
	})
}

// TestDispatchOnOutdatedSchema: on a database whose eventfold schema is
// older than this eventfold (migrated to 00004 only, as after upgrading the
// binary and not the database), Dispatch says the schema is outdated and how
// to upgrade it, instead of the driver's "no such table/function".
func TestDispatchOnOutdatedSchema(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		store := eventfold.New(drv, nil)
		defer store.Close()
		p, err := eventfold.NewMigrator(d, drv.DB())
		require.NoError(t, err)
		_, err = p.UpTo(ctx, 4)
		require.NoError(t, err)

		o := orchestrator.New(store, nil)
		orchestrator.HandleAny(o, "Do", func(ctx context.Context, tx *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
			return []orchestrator.Emit{{Stream: "s-1", Expected: eventfold.Any, Type: "Done", Data: map[string]int{"n": 1}}}, nil
		})
		_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Do", Payload: map[string]int{}, Envelope: orchestrator.Envelope{ID: "cmd-1"}})
		require.ErrorIs(t, err, eventfold.ErrSchemaOutdated)
		require.ErrorContains(t, err, "at version 4")
		require.ErrorContains(t, err, "migrate up")
	})
}

// TestDispatchOnNewerSchema: on a database migrated by a newer eventfold
// (a version above the highest this binary embeds), Dispatch refuses with
// ErrSchemaNewer before writing, alone and in both group-commit modes.
func TestDispatchOnNewerSchema(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store := testdb.SQLStore(t, d)
		known, err := eventfold.LatestSchemaVersion(d)
		require.NoError(t, err)
		applied := "1"
		if d == eventfold.Postgres {
			applied = "true"
		}
		_, err = store.Driver().DB().Exec(fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, known+1, applied))
		require.NoError(t, err)
		for _, gc := range []*orchestrator.GroupCommitConfig{nil, {}, {Batched: true}} {
			s := eventfold.New(store.Driver(), nil) // checks afresh
			o := orchestrator.New(s, &orchestrator.Config{GroupCommit: gc})
			orchestrator.HandleAny(o, "Do", func(ctx context.Context, tx *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "s-1", Expected: eventfold.Any, Type: "Done", Data: map[string]int{"n": 1}}}, nil
			})
			for _, env := range []orchestrator.Envelope{{}, {ID: "cmd-1"}} {
				_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Do", Payload: map[string]int{}, Envelope: env})
				require.ErrorIs(t, err, eventfold.ErrSchemaNewer, "group commit %+v, envelope %+v", gc, env)
				require.Contains(t, err.Error(), fmt.Sprintf("at version %d, this eventfold knows versions up to %d", known+1, known))
			}
		}
		evs, err := store.ReadStream(ctx, "s-1", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Empty(t, evs)
	})
}
