package esctl

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestDoctorAndStatusReadTheVersionTableAsGoose: the latest row of a
// version decides whether it is applied (goose's own reading; an older
// goose recorded a rollback as a row with is_applied false), and a
// migration missing below the applied version is a gap. doctor was silent
// about both and counted the rolled-back row as applied (max(version_id));
// now it names them and exits 1, and migrate status shows them.
func TestDoctorAndStatusReadTheVersionTableAsGoose(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		store := openStore(t, dsn)
		d := store.Dialect()
		latest, err := eventfold.LatestSchemaVersion(d)
		require.NoError(t, err)
		notApplied := "0"
		if d == eventfold.Postgres {
			notApplied = "false"
		}
		exec := func(q string) { require.NoError(t, store.Driver().Ops().Exec(ctx, q), q) }
		mustRun(t, dsn, "doctor")

		// A gap: the row of a middle migration deleted.
		var gap int64
		require.NoError(t, store.Driver().DB().QueryRowContext(ctx, fmt.Sprintf("SELECT max(version_id) FROM %s WHERE version_id < %d", eventfold.MigrationTable, latest)).Scan(&gap))
		exec(fmt.Sprintf("DELETE FROM %s WHERE version_id = %d", eventfold.MigrationTable, gap))
		r := run(t, Options{}, dsn, "doctor")
		require.Equal(t, ExitError, r.code, "doctor on a gap: %s", r.stdout)
		require.Contains(t, r.stdout, fmt.Sprintf("migration %d is not recorded as applied, below version %d", gap, latest))
		r = run(t, Options{}, dsn, "migrate", "status")
		require.Equal(t, ExitOK, r.code, r.stderr)
		require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+pending \(gap\)`, gap), r.stdout)
		require.Contains(t, r.stderr, fmt.Sprintf("migration %d is not recorded as applied", gap))

		// The newest migration rolled back by an older goose: a later row
		// with is_applied false. The version is the one below it.
		exec(fmt.Sprintf("INSERT INTO %s (version_id, is_applied) VALUES (%d, %s)", eventfold.MigrationTable, latest, notApplied))
		v, err := eventfold.New(store.Driver(), nil).SchemaVersion(ctx)
		require.NoError(t, err)
		var below int64 // the highest applied row left: the gap's row is gone
		require.NoError(t, store.Driver().DB().QueryRowContext(ctx, fmt.Sprintf("SELECT max(version_id) FROM %s WHERE version_id < %d", eventfold.MigrationTable, gap)).Scan(&below))
		require.Equal(t, below, v, "the version with %d rolled back and %d missing", latest, gap)
		r = run(t, Options{}, dsn, "doctor")
		require.Equal(t, ExitError, r.code, "doctor on a rolled-back row: %s", r.stdout)
		require.Contains(t, r.stdout, fmt.Sprintf("migration %d is recorded as rolled back", latest))
		r = run(t, Options{}, dsn, "migrate", "status")
		require.Equal(t, ExitOK, r.code, r.stderr)
		require.Regexp(t, fmt.Sprintf(`(?m)^%d\s+rolled-back`, latest), r.stdout)
	})
}
