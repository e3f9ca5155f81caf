package esctl

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack4DoctorAndStatusOnNewerSchema: an operator runs the esctl of
// the old release on a database a newer release has migrated (a rolling
// upgrade). At merge-trial ae16301 `doctor` printed "positions ok" and
// `migrate status` listed every migration it knows as applied, both exit 0,
// neither mentioning version known+1: nothing told the operator that this
// esctl cannot vouch for the schema. Now both say so (doctor on stdout with
// its findings, status on stderr), naming both versions; the exit codes
// stay (they are reports). `doctor --repair` is refused (exit 1) where a
// repair writes (MySQL/MariaDB, PostgreSQL).
func TestAttack4DoctorAndStatusOnNewerSchema(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.EmptyDSN(t, d)
		mustRun(t, dsn, "migrate", "up")
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		known, err := eventfold.LatestSchemaVersion(d)
		require.NoError(t, err)
		applied := "1"
		if d == eventfold.Postgres {
			applied = "true"
		}
		_, err = drv.DB().Exec(fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, known+1, applied))
		require.NoError(t, err)
		want := fmt.Sprintf("newer than this eventfold knows: it is at version %d, this eventfold knows versions up to %d", known+1, known)

		r := run(t, Options{}, dsn, "doctor")
		require.Equal(t, ExitOK, r.code, r.stderr)
		require.Contains(t, r.stdout, want)

		r = run(t, Options{}, dsn, "migrate", "status")
		require.Equal(t, ExitOK, r.code, r.stderr)
		require.Contains(t, r.stderr, want)

		if d != eventfold.SQLite {
			r = run(t, Options{}, dsn, "doctor", "--repair")
			require.Equal(t, ExitError, r.code, "doctor --repair: %s", r.stdout)
			require.Contains(t, r.stderr, want)
		}
	})
}

// TestSubscriptionsResetOnNewerSchema: `subscriptions reset` writes a
// checkpoint: on a schema newer than this esctl it is refused (exit 1,
// ErrSchemaNewer's message) and the checkpoint stays; `subscriptions list`
// reads and goes on.
func TestSubscriptionsResetOnNewerSchema(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 2)
		store := openStore(t, dsn)
		ctx := context.Background()
		require.NoError(t, store.Ops().SetCheckpoint(ctx, "projector", evs[1].GlobalPosition))
		known, err := eventfold.LatestSchemaVersion(store.Dialect())
		require.NoError(t, err)
		applied := "1"
		if store.Dialect() == eventfold.Postgres {
			applied = "true"
		}
		require.NoError(t, store.Driver().Ops().Exec(ctx, fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, known+1, applied)))

		r := run(t, Options{}, dsn, "subscriptions", "reset", "projector", "--to", "0")
		require.Equal(t, ExitError, r.code, "reset: %s", r.stdout)
		require.Contains(t, r.stderr, fmt.Sprintf("it is at version %d", known+1))
		require.Contains(t, mustRun(t, dsn, "subscriptions", "list"), "projector")
		pos, _, err := store.Ops().GetCheckpoint(ctx, "projector")
		require.NoError(t, err)
		require.Equal(t, evs[1].GlobalPosition, pos, "checkpoint after a refused reset")
	})
}
