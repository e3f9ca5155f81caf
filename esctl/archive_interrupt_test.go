package esctl

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestArchiveInterruptedSaysWhatWasDone: an archive interrupted (Ctrl-C:
// its context canceled) while deleting said only "context canceled". It
// now says how far it got, that the file is complete, and that running the
// same command again finishes the job; which it does.
func TestArchiveInterruptedSaysWhatWasDone(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		before := archiveFixture(t, dsn, 9)
		allBefore := mustRun(t, dsn, "read", "--all")
		file := filepath.Join(t.TempDir(), "a.gz")
		cut := before[7].GlobalPosition
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		opts := Options{Getenv: func(string) string { return "" }, hooks: &testHooks{afterArchiveBatch: func(n int) error {
			if n == 2 {
				cancel() // Ctrl-C after the second batch
			}
			return nil
		}}}
		var out, errb strings.Builder
		code := Main(ctx, []string{"--dsn", dsn, "archive", "--before", jsonInt(cut), "--to", file, "--batch", "3"}, &out, &errb, opts)
		require.Equal(t, ExitError, code, "stderr %q", errb.String())
		t.Log(errb.String())
		require.Contains(t, errb.String(), "interrupted after deleting 6 events from the hot table")
		require.Contains(t, errb.String(), file+" is complete")
		require.Contains(t, errb.String(), "run the same command again")
		// As it says: the same command finishes.
		res := mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file, "--batch", "3")
		require.Contains(t, res, "deleted 1 events")
		mustRun(t, dsn, "restore", "--from", file)
		require.Equal(t, allBefore, mustRun(t, dsn, "read", "--all"), "events lost or duplicated")
	})
}
