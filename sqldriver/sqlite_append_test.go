package sqldriver_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/sqldriver"
)

func openSQLite(t *testing.T) (*sqldriver.Driver, *eventfold.Store[*sql.Tx]) {
	t.Helper()
	ctx := context.Background()
	d, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "ef.db"))
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	store := eventfold.New(d, nil)
	require.NoError(t, store.Migrate(ctx))
	return d, store
}

func evData(n int) []eventfold.EventData {
	out := make([]eventfold.EventData, n)
	for i := range out {
		out[i] = eventfold.EventData{ID: uuid.NewString(), Type: "T", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Metadata: json.RawMessage(`{"m":1}`)}
	}
	return out
}

// TestSQLiteAppendWritesOnlyEvents: an append changes exactly its event
// rows (one INSERT; no eventfold_streams upsert, which the previous
// append path ran on every append), and the stream's version still comes
// out right. Fails on the code before migration 00015 (3 changes for 2
// events).
func TestSQLiteAppendWritesOnlyEvents(t *testing.T) {
	ctx := context.Background()
	d, store := openSQLite(t)
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	changes := func() (n int64) {
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT total_changes()`).Scan(&n))
		return n
	}
	before := changes()
	evs, err := store.AppendTx(ctx, tx, "s", eventfold.NoStream, evData(2)...)
	require.NoError(t, err)
	require.Equal(t, int64(2), changes()-before, "rows changed by an append of 2 events")
	require.Equal(t, []int64{1, 2}, []int64{evs[0].StreamVersion, evs[1].StreamVersion})
	evs, err = store.AppendTx(ctx, tx, "s", eventfold.Exact(2), evData(1)...)
	require.NoError(t, err)
	require.Equal(t, int64(3), evs[0].StreamVersion)
	require.NoError(t, d.Commit(ctx, tx))
	v, err := store.StreamVersion(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, int64(3), v)
}

// TestSQLiteAppendInCallerTxLeavesNoTrace: without a savepoint, a failed
// append inside the caller's transaction still leaves nothing behind, for
// a one-statement append and for one larger than a statement carries; a
// refused expectation reports the actual version.
func TestSQLiteAppendInCallerTxLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	d, store := openSQLite(t)
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	first, err := store.AppendTx(ctx, tx, "s", eventfold.NoStream, evData(1)...)
	require.NoError(t, err)

	for _, n := range []int{2, 1500} {
		bad := evData(n)
		bad[n-1].ID = first[0].ID
		_, err = store.AppendTx(ctx, tx, "s", eventfold.Any, bad...)
		require.ErrorIs(t, err, eventfold.ErrDuplicateEventID, "%d events, the last one's id taken", n)
	}
	var wev *eventfold.WrongExpectedVersionError
	for _, c := range []struct {
		stream   string
		expected eventfold.ExpectedVersion
		actual   int64
	}{{"s", eventfold.NoStream, 1}, {"s", eventfold.Exact(0), 1}, {"s", eventfold.Exact(2), 1}, {"none", eventfold.StreamExists, 0}, {"none", eventfold.Exact(1), 0}} {
		for _, n := range []int{1, 2} {
			_, err = store.AppendTx(ctx, tx, c.stream, c.expected, evData(n)...)
			require.ErrorAs(t, err, &wev, "%s expecting %s, %d events", c.stream, c.expected, n)
			require.Equal(t, c.actual, wev.Actual)
		}
	}
	require.NoError(t, d.Commit(ctx, tx))

	evs, err := d.Ops().ReadAll(ctx, 0, 0)
	require.NoError(t, err)
	require.Len(t, evs, 1, "only the first append committed")
	v, err := store.StreamVersion(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
	v, err = store.StreamVersion(ctx, "none")
	require.NoError(t, err)
	require.Equal(t, int64(0), v)

	// Every statement shape succeeds when the expectation holds.
	tx, err = d.Begin(ctx)
	require.NoError(t, err)
	for _, n := range []int{1, 2} {
		evs, err := store.AppendTx(ctx, tx, "ok", eventfold.Any, evData(n)...)
		require.NoError(t, err)
		_, err = store.AppendTx(ctx, tx, "ok", eventfold.Exact(evs[n-1].StreamVersion), evData(1)...)
		require.NoError(t, err)
	}
	_, err = store.AppendTx(ctx, tx, "ok", eventfold.StreamExists, evData(1)...)
	require.NoError(t, err)
	_, err = store.AppendTx(ctx, tx, "ok2", eventfold.NoStream, evData(1)...)
	require.NoError(t, err)
	v, err = d.OpsTx(tx).StreamVersion(ctx, "ok")
	require.NoError(t, err)
	require.Equal(t, int64(6), v)
	require.NoError(t, d.Rollback(ctx, tx))
}

// TestSQLiteAppendResultsAsStored: what an append returns is what a read
// returns, field by field (positions, versions, recorded_at), for one
// event, several, and more than one statement carries.
func TestSQLiteAppendResultsAsStored(t *testing.T) {
	ctx := context.Background()
	_, store := openSQLite(t)
	var all []eventfold.Event
	for _, n := range []int{1, 3, 2500} {
		evs, err := store.Append(ctx, fmt.Sprintf("s-%d", n), eventfold.Any, evData(n)...)
		require.NoError(t, err)
		all = append(all, evs...)
	}
	evs, err := store.Append(ctx, "s-3", eventfold.Exact(3), evData(2)...)
	require.NoError(t, err)
	require.Equal(t, []int64{4, 5}, []int64{evs[0].StreamVersion, evs[1].StreamVersion})
	all = append(all, evs...)
	back, err := store.Driver().Ops().ReadAll(ctx, 0, 10000)
	require.NoError(t, err)
	require.Equal(t, len(all), len(back))
	for i := range all {
		require.Equal(t, back[i], all[i], "event %d", i)
		if i > 0 {
			require.Equal(t, all[i-1].GlobalPosition+1, all[i].GlobalPosition, "positions follow the append order")
		}
	}
}

// TestSQLiteAppendMany: the native batch append gives what Append per
// element in order gives, a stream appearing twice included, and names
// the failing element.
func TestSQLiteAppendMany(t *testing.T) {
	ctx := context.Background()
	d, store := openSQLite(t)
	pre, err := store.Append(ctx, "b", eventfold.Any, evData(1)...)
	require.NoError(t, err)

	batch := []contract.StreamAppend{
		{StreamID: "a", Expected: eventfold.NoStream, Events: evData(2)},
		{StreamID: "b", Expected: eventfold.Exact(1), Events: evData(1)},
		{StreamID: "a", Expected: eventfold.Exact(2), Events: evData(3)},
		{StreamID: "c", Expected: eventfold.Any, Events: evData(1)},
	}
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	out, err := d.OpsTx(tx).AppendMany(ctx, batch)
	require.NoError(t, err)
	require.NoError(t, d.Commit(ctx, tx))
	require.Len(t, out, len(batch))
	want := [][]int64{{1, 2}, {2}, {3, 4, 5}, {1}}
	var flat []eventfold.Event
	for i, evs := range out {
		require.Len(t, evs, len(want[i]))
		for j, e := range evs {
			require.Equal(t, want[i][j], e.StreamVersion, "element %d event %d", i, j)
			require.Equal(t, batch[i].StreamID, e.StreamID)
			require.Equal(t, batch[i].Events[j].ID, e.ID)
		}
		flat = append(flat, evs...)
	}
	back, err := d.Ops().ReadAll(ctx, pre[0].GlobalPosition+1, 100)
	require.NoError(t, err)
	require.Equal(t, flat, back, "results as stored, positions in batch order")

	// Failures name the element and write nothing before the INSERT.
	failing := func(batch []contract.StreamAppend) *contract.AppendManyError {
		t.Helper()
		tx, err := d.Begin(ctx)
		require.NoError(t, err)
		defer func() { require.NoError(t, d.Rollback(ctx, tx)) }()
		_, err = d.OpsTx(tx).AppendMany(ctx, batch)
		var me *contract.AppendManyError
		require.ErrorAs(t, err, &me)
		return me
	}
	me := failing([]contract.StreamAppend{
		{StreamID: "a", Expected: eventfold.Exact(5), Events: evData(1)},
		{StreamID: "a", Expected: eventfold.Exact(5), Events: evData(1)},
	})
	require.Equal(t, 1, me.Index, "the second expects the version the first left")
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, me, &wev)
	require.Equal(t, int64(6), wev.Actual)

	dup := evData(1)
	me = failing([]contract.StreamAppend{
		{StreamID: "x", Expected: eventfold.Any, Events: evData(2)},
		{StreamID: "y", Expected: eventfold.Any, Events: dup},
		{StreamID: "z", Expected: eventfold.Any, Events: dup},
	})
	require.Equal(t, 2, me.Index, "an id an earlier element appends")
	require.ErrorIs(t, me, eventfold.ErrDuplicateEventID)

	taken := evData(2)
	taken[1].ID = pre[0].ID
	me = failing([]contract.StreamAppend{
		{StreamID: "x", Expected: eventfold.Any, Events: evData(2)},
		{StreamID: "y", Expected: eventfold.Any, Events: evData(1)},
		{StreamID: "z", Expected: eventfold.Any, Events: taken},
	})
	require.Equal(t, 2, me.Index, "an id already stored")
	require.ErrorIs(t, me, eventfold.ErrDuplicateEventID)
	require.True(t, errors.Is(me, eventfold.ErrDuplicateEventID))

	v, err := store.StreamVersion(ctx, "x")
	require.NoError(t, err)
	require.Equal(t, int64(0), v, "rolled back")
}

// TestSQLiteArchivedStreamKeepsVersion: appends no longer write
// eventfold_streams; when archiving deletes every event of a stream, the
// trigger of migration 00015 keeps its version, so the stream goes on
// from there and still counts in the statistics.
func TestSQLiteArchivedStreamKeepsVersion(t *testing.T) {
	ctx := context.Background()
	d, store := openSQLite(t)
	evs, err := store.Append(ctx, "gone", eventfold.Any, evData(3)...)
	require.NoError(t, err)
	_, err = store.Append(ctx, "kept", eventfold.Any, evData(2)...)
	require.NoError(t, err)
	var rows int
	require.NoError(t, d.DB().QueryRowContext(ctx, `SELECT count(*) FROM eventfold_streams`).Scan(&rows))
	require.Equal(t, 0, rows, "appends write no streams rows")

	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	n, err := d.OpsTx(tx).DeleteEventRange(ctx, evs[0].GlobalPosition, evs[2].GlobalPosition)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)
	require.NoError(t, d.Commit(ctx, tx))

	v, err := store.StreamVersion(ctx, "gone")
	require.NoError(t, err)
	require.Equal(t, int64(3), v, "the version of a stream whose events were all archived")
	_, err = store.Append(ctx, "gone", eventfold.NoStream, evData(1)...)
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, int64(3), wev.Actual)
	next, err := store.Append(ctx, "gone", eventfold.Exact(3), evData(1)...)
	require.NoError(t, err)
	require.Equal(t, int64(4), next[0].StreamVersion)

	_, streams, _, err := d.Ops().StatsTotals(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), streams)
}
