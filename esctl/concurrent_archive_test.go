package esctl

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestConcurrentArchivesLoseNothing: two archive runs at the same time
// (an overlapping cron job), with different --before, both read the same
// watermark. Before the fix both deleted their range and the last to set
// the watermark won: in 3 of 5 rounds on SQLite and on MariaDB it ended at
// the lower range while the higher one's events were gone from the hot
// table, so reads from the watermark silently skipped 25 events (no
// "archived" error). Now only one run moves the watermark; the other
// deletes nothing, removes its file and fails (exit 1). Every round: the
// hot table holds every event from the watermark on.
func TestConcurrentArchivesLoseNothing(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 40)
		ctx := context.Background()
		store := openStore(t, dsn)
		ao := store.Driver().Ops()
		cuts := []int{5, 10, 15, 20, 25, 30, 35, 39}
		for round := 0; round+1 < len(cuts); round += 2 {
			dir := t.TempDir()
			var wg sync.WaitGroup
			res := make([]result, 2)
			for i, c := range []int{cuts[round+1], cuts[round]} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i] = run(t, Options{}, dsn, "archive", "--before", jsonInt(evs[c].GlobalPosition), "--to", filepath.Join(dir, jsonInt(int64(i))+".gz"))
				}()
			}
			wg.Wait()
			w, err := ao.ArchivedBefore(ctx)
			require.NoError(t, err)
			got, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: w})
			require.NoError(t, err)
			want := 0
			for _, e := range evs {
				if e.GlobalPosition >= w {
					want++
				}
			}
			require.Len(t, got, want, "round %d: watermark %d; runs: %+v", round, w, res)
			for _, r := range res {
				if r.code != 0 {
					require.Contains(t, r.stderr, "another archive or restore ran at the same time")
				}
			}
		}
	})
}

// TestConcurrentRestoresOfOneFile: the same archive restored twice at
// once (an operator's retry while the first run still works) ends with
// every event back, the watermark lowered, and both runs exit 0. Before,
// on MariaDB the two runs' batches deadlocked and one failed with a raw
// "Deadlock found" (exit 1), and on PostgreSQL the run that lost the race
// to lower the watermark failed although the other had lowered it to the
// same place.
func TestConcurrentRestoresOfOneFile(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		for round := 0; round < 3; round++ {
			evs := archiveFixture(t, dsn, 30)
			file := filepath.Join(t.TempDir(), "a.gz")
			mustRun(t, dsn, "archive", "--before", jsonInt(evs[len(evs)-1].GlobalPosition), "--to", file)
			var wg sync.WaitGroup
			res := make([]result, 2)
			for i := range res {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i] = run(t, Options{}, dsn, "restore", "--from", file, "--batch", "3")
				}()
			}
			wg.Wait()
			for _, r := range res {
				require.Zero(t, r.code, "round %d: %+v", round, res)
			}
			got, err := openStore(t, dsn).ReadAll(context.Background(), eventfold.ReadAllOptions{})
			require.NoError(t, err)
			require.Len(t, got, len(evs))
		}
	})
}
