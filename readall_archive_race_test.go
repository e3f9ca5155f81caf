package eventfold_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestReadAllRacingArchiveNeverSkips archives the log one event at a time
// (raise the watermark, then delete, as esctl archive does) while readers
// tail it from just below the watermark. ReadAll reads the watermark and
// the events in two statements: an archive committing between the two
// used to let a read that passed the watermark check return events from
// above the freshly deleted range, silently skipping it. Every event is in
// one stream, so a skip shows as a jump in stream versions. A read may
// fail with ErrArchived (the reader then restarts at the watermark, and
// knows it did); it must never return a jump.
func TestReadAllRacingArchiveNeverSkips(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store := testdb.SQLStore(t, d)
		const total, perAppend = 600, 50
		var all []eventfold.Event
		for len(all) < total {
			batch := make([]eventfold.EventData, perAppend)
			for i := range batch {
				batch[i] = eventfold.EventData{Type: "T", Data: []byte(`{}`)}
			}
			evs, err := store.Append(ctx, "archive-race", eventfold.Any, batch...)
			require.NoError(t, err)
			all = append(all, evs...)
		}
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := store.WaitHead(wctx, all[len(all)-1].GlobalPosition)
		require.NoError(t, err)
		ops := store.Driver().Ops()

		var done atomic.Bool
		var skips atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pos, version := int64(-1), int64(0) // version 0: unknown (after a restart)
				for !done.Load() {
					evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: pos + 1, Limit: 3})
					var ae *eventfold.ArchivedError
					if errors.As(err, &ae) {
						pos, version = ae.ArchivedBefore-1, 0
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					if len(evs) == 0 {
						continue
					}
					if version != 0 && evs[0].StreamVersion != version+1 {
						skips.Add(1)
						errs <- fmt.Errorf("read from position %d after version %d returned version %d: %d events skipped",
							pos+1, version, evs[0].StreamVersion, evs[0].StreamVersion-version-1)
						return
					}
					for i := 1; i < len(evs); i++ {
						if evs[i].StreamVersion != evs[i-1].StreamVersion+1 {
							errs <- fmt.Errorf("read returned versions %d then %d", evs[i-1].StreamVersion, evs[i].StreamVersion)
							return
						}
					}
					last := evs[len(evs)-1]
					pos, version = last.GlobalPosition, last.StreamVersion
					if last.GlobalPosition == all[len(all)-1].GlobalPosition {
						pos, version = -1, 0 // wrap round: start again from the watermark
					}
				}
			}()
		}
		deadline := time.Now().Add(20 * time.Second)
		for k := 0; k < len(all)-1 && time.Now().Before(deadline) && skips.Load() == 0; k++ {
			require.NoError(t, ops.SetArchivedBefore(ctx, all[k+1].GlobalPosition))
			n, err := ops.DeleteEventRange(ctx, all[k].GlobalPosition, all[k].GlobalPosition)
			require.NoError(t, err)
			require.EqualValues(t, 1, n)
		}
		done.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
