package pgxdriver_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// withID gives an event the id Store would give it (Ops take ids as set).
func withID(e eventfold.EventData) eventfold.EventData {
	e.ID = uuid.NewString()
	return e
}

// TestAppendManyOneStatement: several streams, one of them twice, in one
// call: versions follow on within the batch, positions follow the batch
// order, results come back per element as Append would return them.
func TestAppendManyOneStatement(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	a, b := streamID(t, "a"), streamID(t, "b")
	_, err := s.Append(ctx, b, eventfold.NoStream, ev("Init", `0`))
	require.NoError(t, err)

	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, tx) }()
	out, err := d.OpsTx(tx).AppendMany(ctx, []contract.StreamAppend{
		{StreamID: a, Expected: eventfold.NoStream, Events: []eventfold.EventData{withID(ev("A", `1`)), withID(ev("A", `{"y": 2, "x": 1}`))}},
		{StreamID: b, Expected: eventfold.Exact(1), Events: []eventfold.EventData{withID(ev("B", `2`))}},
		{StreamID: a, Expected: eventfold.Exact(2), Events: []eventfold.EventData{withID(ev("A", `3`))}},
		{StreamID: b, Expected: eventfold.Any, Events: []eventfold.EventData{withID(ev("B", `3`))}},
	})
	require.NoError(t, err)
	require.NoError(t, d.Commit(ctx, tx))
	require.Len(t, out, 4)
	want := []struct {
		stream   string
		versions []int64
	}{{a, []int64{1, 2}}, {b, []int64{2}}, {a, []int64{3}}, {b, []int64{3}}}
	var last int64
	for i, w := range want {
		require.Len(t, out[i], len(w.versions))
		for j, e := range out[i] {
			require.Equal(t, w.stream, e.StreamID)
			require.Equal(t, w.versions[j], e.StreamVersion, "element %d event %d", i, j)
			require.Greater(t, e.GlobalPosition, last, "positions follow the batch order")
			last = e.GlobalPosition
		}
	}
	require.JSONEq(t, `{"x": 1, "y": 2}`, string(out[0][1].Data))
	require.Equal(t, `{"x": 1, "y": 2}`, string(out[0][1].Data), "data as stored (jsonb's form)")

	for _, st := range []string{a, b} {
		evs, err := s.ReadStream(ctx, st, eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Len(t, evs, 3)
		requireStreamInPositionOrder(t, s, st, 3)
	}
}

// TestAppendManyFailureNamesElement: the first element that fails is
// named, with the error Append would give; nothing is written.
func TestAppendManyFailureNamesElement(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	a, b := streamID(t, "a"), streamID(t, "b")
	first, err := s.Append(ctx, b, eventfold.NoStream, ev("Init", `0`), ev("Init", `1`))
	require.NoError(t, err)

	try := func(appends []contract.StreamAppend) error {
		tx, err := d.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = d.Rollback(ctx, tx) }()
		_, err = d.OpsTx(tx).AppendMany(ctx, appends)
		return err
	}
	var me *contract.AppendManyError
	var wev *eventfold.WrongExpectedVersionError

	err = try([]contract.StreamAppend{
		{StreamID: a, Expected: eventfold.Any, Events: []eventfold.EventData{withID(ev("A", `1`))}},
		{StreamID: b, Expected: eventfold.Exact(1), Events: []eventfold.EventData{withID(ev("B", `2`))}},
	})
	require.ErrorAs(t, err, &me)
	require.Equal(t, 1, me.Index)
	require.ErrorAs(t, err, &wev)
	require.Equal(t, int64(2), wev.Actual)
	require.Equal(t, b, wev.StreamID)

	// The same stream twice: the second element's expectation counts the first's events.
	err = try([]contract.StreamAppend{
		{StreamID: a, Expected: eventfold.NoStream, Events: []eventfold.EventData{withID(ev("A", `1`))}},
		{StreamID: a, Expected: eventfold.NoStream, Events: []eventfold.EventData{withID(ev("A", `2`))}},
	})
	require.ErrorAs(t, err, &me)
	require.Equal(t, 1, me.Index)
	require.ErrorAs(t, err, &wev)
	require.Equal(t, int64(1), wev.Actual)

	dup := withID(ev("A", `1`))
	dup.ID = first[0].ID
	err = try([]contract.StreamAppend{
		{StreamID: a, Expected: eventfold.Any, Events: []eventfold.EventData{withID(ev("A", `1`))}},
		{StreamID: b, Expected: eventfold.Any, Events: []eventfold.EventData{withID(ev("B", `1`))}},
		{StreamID: a, Expected: eventfold.Any, Events: []eventfold.EventData{dup}},
	})
	require.ErrorAs(t, err, &me)
	require.Equal(t, 2, me.Index)
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)

	err = try([]contract.StreamAppend{
		{StreamID: a, Expected: eventfold.Any, Events: []eventfold.EventData{withID(ev("A", `1`))}},
		{StreamID: b, Expected: eventfold.Any},
	})
	require.ErrorAs(t, err, &me)
	require.Equal(t, 1, me.Index)

	v, err := s.StreamVersion(ctx, a)
	require.NoError(t, err)
	require.Zero(t, v, "nothing of the failed batches is kept")
}

// TestConcurrentAnyAppendsAllSucceed: appends with Any to one stream from
// many transactions at once all succeed (an append that lost its version
// to a concurrent one runs again in its transaction), with dense versions
// in position order. Without the stream row lock (00015) this is what the
// unique index and the retry must give.
func TestConcurrentAnyAppendsAllSucceed(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	id := streamID(t, "hot")
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := s.Append(ctx, id, eventfold.Any, ev("Hot", `1`), ev("Hot", `2`)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		// ErrStreamOrder (a later transaction committed first, twice) is
		// the only acceptable failure, and it is transient.
		require.ErrorIs(t, err, eventfold.ErrStreamOrder)
		failed++
	}
	v, err := s.StreamVersion(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(2*(writers*each-failed)), v)
	requireStreamInPositionOrder(t, s, id, int(v))
	require.Zero(t, failed, "appends to one stream queue on its lock: none is refused")
}

// TestArchivedStreamKeepsItsVersion: a stream whose events were all
// archived goes on from its last version (00015 takes the version from
// the events, falling back to what archiving kept in eventfold.streams).
func TestArchivedStreamKeepsItsVersion(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	id := streamID(t, "archived")
	evs, err := s.Append(ctx, id, eventfold.NoStream, ev("A", `1`), ev("A", `2`), ev("A", `3`))
	require.NoError(t, err)
	n, err := d.Ops().DeleteEventRange(ctx, evs[0].GlobalPosition, evs[2].GlobalPosition)
	require.NoError(t, err)
	require.Equal(t, int64(3), n)

	v, err := s.StreamVersion(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(3), v)
	_, err = s.Append(ctx, id, eventfold.NoStream, ev("A", `0`))
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, int64(3), wev.Actual)
	out, err := s.Append(ctx, id, eventfold.Exact(3), ev("A", `4`))
	require.NoError(t, err)
	require.Equal(t, int64(4), out[0].StreamVersion)
	_, err = s.Append(ctx, id, eventfold.Any, ev("A", `5`))
	require.NoError(t, err)
	v, err = s.StreamVersion(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(5), v)
}
