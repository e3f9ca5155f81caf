package esctl

import (
	"context"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// Issue 16, item 10: operators cannot destroy data by accident.

// TestRestoreRefusesForeignArchive: an archive names its dialect and store
// identity; restoring it into another store (same dialect, or another
// dialect, the SQLite archive into PostgreSQL) is refused with a
// message saying what differs, changes nothing, and goes ahead only with
// --force.
func TestRestoreRefusesForeignArchive(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		src := testdb.DSN(t, eventfold.SQLite)
		evs := archiveFixture(t, src, 3)
		file := filepath.Join(t.TempDir(), "a.jsonl.gz")
		mustRun(t, src, "archive", "--before", jsonInt(evs[2].GlobalPosition), "--to", file)

		h, _, err := verifyArchive(file)
		require.NoError(t, err)
		srcID, err := openStore(t, src).Identity(context.Background())
		require.NoError(t, err)
		require.NotEmpty(t, srcID)
		require.Equal(t, srcID, h.StoreID, "the archive header names the store")

		dst := testdb.DSN(t, d)
		dstID, err := openStore(t, dst).Identity(context.Background())
		require.NoError(t, err)
		require.NotEqual(t, srcID, dstID, "every migrated store gets its own identity")

		r := run(t, Options{}, dst, "restore", "--from", file)
		require.Equal(t, ExitError, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "refusing to restore")
		require.Contains(t, r.stderr, "this database is store "+dstID)
		require.Contains(t, r.stderr, "--force")
		if d != eventfold.SQLite {
			require.Contains(t, r.stderr, "the archive is from a sqlite database, this one is "+string(d))
		}
		last, err := openStore(t, dst).LastPosition(context.Background())
		require.NoError(t, err)
		require.Zero(t, last, "a refused restore writes nothing")

		r = run(t, Options{}, dst, "restore", "--from", file, "--force")
		require.Equal(t, 0, r.code, "stderr %q", r.stderr)
		require.Contains(t, r.stdout, "restored 2 events")
		require.Contains(t, r.stderr, "warning: --force")

		// Into its own store it restores without --force.
		out := mustRun(t, src, "restore", "--from", file)
		require.Contains(t, out, "restored 2 events")
	})
}

// TestMigrateDownRefusesDataLoss: migrate down that would drop the log or
// the archive watermark is refused, says what would be lost, and leaves
// everything in place; --force does it. A down-then-up can no longer wipe
// the watermark silently.
func TestMigrateDownRefusesDataLoss(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 7)
		r := run(t, Options{}, dsn, "migrate", "down", "--to", "0")
		require.Equal(t, ExitError, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "7 events in 3 streams")
		require.Contains(t, r.stderr, "--force")
		require.Len(t, decodeEvents(t, mustRun(t, dsn, "read", "--all")), 7, "the log is intact")

		file := filepath.Join(t.TempDir(), "a.jsonl.gz")
		cut := evs[2].GlobalPosition
		mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file)
		r = run(t, Options{}, dsn, "migrate", "down", "--to", "3")
		require.Equal(t, ExitError, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "the archive watermark "+jsonInt(cut))
		require.NotContains(t, r.stderr, "events in", "down to 3 keeps the log")
		mustRun(t, dsn, "migrate", "up")
		var st Stats
		require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
		require.Equal(t, cut, st.ArchivedBefore, "the watermark survived")
		r = run(t, Options{}, dsn, "read", "--all")
		require.Equal(t, ExitError, r.code)
		require.Contains(t, r.stderr, "archived")

		// Stepping down one migration at a time is guarded too.
		mustRun(t, dsn, "migrate", "down", "--to", "4")
		r = run(t, Options{}, dsn, "migrate", "down")
		require.Equal(t, ExitError, r.code, "stdout %q stderr %q", r.stdout, r.stderr)
		require.Contains(t, r.stderr, "the archive watermark")

		// --force does it, and says nothing more is in the way.
		mustRun(t, dsn, "migrate", "down", "--to", "0", "--force")
		out := mustRun(t, dsn, "migrate", "status")
		require.NotContains(t, out, "applied  ")
	})
}

// TestMigrateDownEmptyStoreNeedsNoForce: nothing to lose, nothing to
// confirm.
func TestMigrateDownEmptyStoreNeedsNoForce(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	mustRun(t, dsn, "migrate", "down", "--to", "0")
	fsys, err := eventfold.MigrationsFS(eventfold.SQLite)
	require.NoError(t, err)
	files, err := fs.Glob(fsys, "*.sql")
	require.NoError(t, err)
	out := mustRun(t, dsn, "migrate", "status")
	require.Equal(t, len(files), strings.Count(out, "pending"), out)
}
