package eventfold_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestReadAllNeverSkipsAHalfRestoredRange pins what any cheaper archive
// check on ReadAll must keep, on every dialect. esctl restore inserts a
// file's events oldest first, in committed batches, and lowers the
// watermark only at the end; esctl archive raises it first and deletes
// afterwards. Half-way through a restore the log therefore holds
// [restored part] gap [watermark, ...): a read from the bottom of the
// restored part finds an event exactly at its from, yet would jump the
// gap. Skipping the watermark query whenever the first event read is at
// from (the cache idea of issue 10 item 4) would return that read
// silently; it must fail with ErrArchived until the restore is complete.
func TestReadAllNeverSkipsAHalfRestoredRange(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store := testdb.SQLStore(t, d)
		var all []eventfold.Event
		for i := range 6 {
			evs, err := store.Append(ctx, "restore-gap", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{"i":` + string(rune('0'+i)) + `}`)})
			require.NoError(t, err)
			all = append(all, evs...)
		}
		// PostgreSQL: other transactions of the cluster hold the read horizon back.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		_, err := store.WaitHead(wctx, all[5].GlobalPosition)
		require.NoError(t, err)
		ops := store.Driver().Ops()
		w := all[4].GlobalPosition
		// Archive [0, 4): raise the watermark, then delete.
		require.NoError(t, ops.SetArchivedBefore(ctx, w))
		n, err := ops.DeleteEventRange(ctx, all[0].GlobalPosition, all[3].GlobalPosition)
		require.NoError(t, err)
		require.EqualValues(t, 4, n)
		// Half a restore: the first two are back, the watermark is still w.
		n, err = ops.RestoreEvents(ctx, all[:2])
		require.NoError(t, err)
		require.EqualValues(t, 2, n)

		for _, from := range []int64{0, all[0].GlobalPosition, all[1].GlobalPosition, all[1].GlobalPosition + 1} {
			evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: from})
			require.ErrorIs(t, err, eventfold.ErrArchived, "from %d read %d events", from, len(evs))
			var ae *eventfold.ArchivedError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, w, ae.ArchivedBefore)
		}
		// At and above the watermark nothing is missing.
		evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: w})
		require.NoError(t, err)
		require.Equal(t, []int64{all[4].GlobalPosition, all[5].GlobalPosition}, positions(evs))

		// The restore completes: the rest goes in, then the watermark drops.
		_, err = ops.RestoreEvents(ctx, all[2:4])
		require.NoError(t, err)
		ok, err := ops.SwapArchivedBefore(ctx, w, all[0].GlobalPosition)
		require.NoError(t, err)
		require.True(t, ok)
		evs, err = store.ReadAll(ctx, eventfold.ReadAllOptions{From: all[0].GlobalPosition})
		require.NoError(t, err)
		require.Equal(t, positions(all), positions(evs))
	})
}

func positions(evs []eventfold.Event) []int64 {
	ps := make([]int64, len(evs))
	for i, e := range evs {
		ps[i] = e.GlobalPosition
	}
	return ps
}
