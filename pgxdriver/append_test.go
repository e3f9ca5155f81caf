package pgxdriver_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

func TestAppendExpectedVersions(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	id := streamID(t, "s")

	// refused: wants the stream as version, current version before, and after
	type step struct {
		expected eventfold.ExpectedVersion
		ok       bool
		version  int64 // stream version after the step
	}
	steps := []step{
		{eventfold.StreamExists, false, 0},
		{eventfold.Exact(1), false, 0},
		{eventfold.NoStream, true, 1},
		{eventfold.NoStream, false, 1},
		{eventfold.Exact(0), false, 1},
		{eventfold.Exact(2), false, 1},
		{eventfold.Exact(1), true, 2},
		{eventfold.Any, true, 3},
		{eventfold.StreamExists, true, 4},
		{eventfold.Exact(3), false, 4},
		{eventfold.Exact(4), true, 5},
	}
	for i, st := range steps {
		before, err := s.StreamVersion(ctx, id)
		require.NoError(t, err)
		out, err := s.Append(ctx, id, st.expected, ev("Step", `{"i":1}`))
		if st.ok {
			require.NoError(t, err, "step %d (%s)", i, st.expected)
			require.Len(t, out, 1)
			require.Equal(t, st.version, out[0].StreamVersion, "step %d", i)
		} else {
			require.Error(t, err, "step %d (%s) should be refused", i, st.expected)
			require.ErrorIs(t, err, eventfold.ErrWrongExpectedVersion)
			var wev *eventfold.WrongExpectedVersionError
			require.ErrorAs(t, err, &wev)
			require.Equal(t, id, wev.StreamID)
			require.Equal(t, st.expected, wev.Expected)
			require.Equal(t, before, wev.Actual, "step %d: Actual", i)
		}
		after, err := s.StreamVersion(ctx, id)
		require.NoError(t, err)
		require.Equal(t, st.version, after, "step %d: version after", i)
	}

	// A new stream accepts Any and Exact(0).
	for _, exp := range []eventfold.ExpectedVersion{eventfold.Any, eventfold.Exact(0)} {
		out, err := s.Append(ctx, streamID(t, "new"), exp, ev("A", `1`), ev("B", `2`))
		require.NoError(t, err, "new stream with %s", exp)
		require.Equal(t, []int64{1, 2}, []int64{out[0].StreamVersion, out[1].StreamVersion})
	}
}

func TestAppendReturnsRecordedEvents(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	id := streamID(t, "s")
	eid := uuid.New()
	start := time.Now()
	out, err := s.Append(ctx, id, eventfold.NoStream,
		eventfold.EventData{ID: eid.String(), Type: "Opened", Data: []byte(`{"owner":"Ada"}`), Metadata: []byte(`{"correlation_id":"c1"}`)},
		ev("Deposited", `{"amount":100}`),
	)
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.Equal(t, eid.String(), out[0].ID)
	_, err = uuid.Parse(out[1].ID)
	require.NoError(t, err, "generated id")
	require.Equal(t, out[0].GlobalPosition+1, out[1].GlobalPosition, "one append takes consecutive positions")
	require.Equal(t, out[0].GlobalPosition>>20, out[1].GlobalPosition>>20, "same transaction slot")
	for _, e := range out {
		require.Equal(t, time.UTC, e.RecordedAt.Location())
		require.WithinDuration(t, start, e.RecordedAt, time.Minute)
		require.Equal(t, id, e.StreamID)
	}

	read, err := s.ReadStream(ctx, id, eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, read, 2)
	for i := range out {
		require.Equal(t, out[i].GlobalPosition, read[i].GlobalPosition)
		require.Equal(t, out[i].StreamVersion, read[i].StreamVersion)
		require.Equal(t, out[i].ID, read[i].ID)
		require.Equal(t, out[i].Type, read[i].Type)
		require.JSONEq(t, string(out[i].Data), string(read[i].Data))
		require.JSONEq(t, string(out[i].Metadata), string(read[i].Metadata))
		require.True(t, out[i].RecordedAt.Equal(read[i].RecordedAt))
		require.Equal(t, time.UTC, read[i].RecordedAt.Location())
	}
	require.JSONEq(t, `{}`, string(read[1].Metadata), "metadata defaults to an empty object")
	require.JSONEq(t, `{"correlation_id":"c1"}`, string(read[0].Metadata))
}

func TestReadStream(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	id := streamID(t, "s")
	var evs []eventfold.EventData
	for i := 1; i <= 5; i++ {
		evs = append(evs, ev("N", string(rune('0'+i))))
	}
	_, err := s.Append(ctx, id, eventfold.NoStream, evs...)
	require.NoError(t, err)

	versions := func(es []eventfold.Event) []int64 {
		v := []int64{}
		for _, e := range es {
			v = append(v, e.StreamVersion)
		}
		return v
	}
	cases := []struct {
		name string
		opt  eventfold.ReadStreamOptions
		want []int64
	}{
		{"forward all", eventfold.ReadStreamOptions{}, []int64{1, 2, 3, 4, 5}},
		{"forward from 3 limit 2", eventfold.ReadStreamOptions{From: 3, Limit: 2}, []int64{3, 4}},
		{"forward past the end", eventfold.ReadStreamOptions{From: 6}, []int64{}},
		{"forward limit 1", eventfold.ReadStreamOptions{Limit: 1}, []int64{1}},
		{"backward from the end", eventfold.ReadStreamOptions{Backward: true}, []int64{5, 4, 3, 2, 1}},
		{"backward from 3 limit 2", eventfold.ReadStreamOptions{From: 3, Backward: true, Limit: 2}, []int64{3, 2}},
		{"backward from beyond the end", eventfold.ReadStreamOptions{From: 99, Backward: true, Limit: 2}, []int64{5, 4}},
	}
	for _, c := range cases {
		got, err := s.ReadStream(ctx, id, c.opt)
		require.NoError(t, err, c.name)
		require.Equal(t, c.want, versions(got), c.name)
	}
	got, err := s.ReadStream(ctx, id, eventfold.ReadStreamOptions{From: 2, Limit: 1})
	require.NoError(t, err)
	require.JSONEq(t, `2`, string(got[0].Data))

	none, err := s.ReadStream(ctx, streamID(t, "missing"), eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Empty(t, none)
	v, err := s.StreamVersion(ctx, streamID(t, "missing"))
	require.NoError(t, err)
	require.Zero(t, v)

	// Stream ids are case-sensitive.
	upper, err := s.ReadStream(ctx, "X"+id, eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Empty(t, upper)
}

func TestDuplicateEventID(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	dup := uuid.NewString()
	first := streamID(t, "a")
	second := streamID(t, "b")
	_, err := s.Append(ctx, first, eventfold.Any, eventfold.EventData{ID: dup, Type: "T", Data: []byte(`1`)})
	require.NoError(t, err)
	_, err = s.Append(ctx, second, eventfold.Any, ev("Other", `1`), eventfold.EventData{ID: dup, Type: "T", Data: []byte(`2`)})
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
	require.NotErrorIs(t, err, eventfold.ErrWrongExpectedVersion)
	require.Equal(t, "23505", sqlState(err), "the driver error stays reachable")
	v, err := s.StreamVersion(ctx, second)
	require.NoError(t, err)
	require.Zero(t, v, "nothing of the failed append is kept")
}

func TestConcurrentAppendsOneWinner(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	const writers = 8
	for _, tc := range []struct {
		name     string
		prepare  int // events appended first
		expected eventfold.ExpectedVersion
	}{
		{"exact", 1, eventfold.Exact(1)},
		{"no stream", 0, eventfold.NoStream},
	} {
		id := streamID(t, tc.name)
		if tc.prepare > 0 {
			_, err := s.Append(ctx, id, eventfold.NoStream, ev("Init", `0`))
			require.NoError(t, err)
		}
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = s.Append(ctx, id, tc.expected, ev("Race", `1`), ev("Race", `2`))
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
				continue
			}
			var wev *eventfold.WrongExpectedVersionError
			require.ErrorAs(t, err, &wev, tc.name)
			require.Equal(t, int64(tc.prepare+2), wev.Actual, tc.name)
		}
		require.Equal(t, 1, wins, "%s: exactly one winner", tc.name)
		v, err := s.StreamVersion(ctx, id)
		require.NoError(t, err)
		require.Equal(t, int64(tc.prepare+2), v)
	}
}

func TestLockTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	id := streamID(t, "s")
	holder, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, holder) }()
	_, err = s.AppendTx(ctx, holder, id, eventfold.NoStream, ev("Held", `1`))
	require.NoError(t, err)

	err = s.InTx(ctx, func(tx pgx.Tx) error {
		if err := d.OpsTx(tx).Exec(ctx, "SET LOCAL lock_timeout = '100ms'"); err != nil {
			return err
		}
		_, err := s.AppendTx(ctx, tx, id, eventfold.Any, ev("Blocked", `1`))
		return err
	})
	require.ErrorIs(t, err, eventfold.ErrTransient)
	require.Equal(t, "55P03", sqlState(err))
}

func TestAppendsInOneTransaction(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	a, b, c := streamID(t, "a"), streamID(t, "b"), streamID(t, "c")
	var pa, pc []eventfold.Event
	err := s.InTx(ctx, func(tx pgx.Tx) error {
		var err error
		if pa, err = s.AppendTx(ctx, tx, a, eventfold.NoStream, ev("A", `1`), ev("A", `2`)); err != nil {
			return err
		}
		ops := d.OpsTx(tx)
		if err := ops.Exec(ctx, "SAVEPOINT sp"); err != nil {
			return err
		}
		if _, err := s.AppendTx(ctx, tx, b, eventfold.NoStream, ev("B", `1`)); err != nil {
			return err
		}
		if err := ops.Exec(ctx, "ROLLBACK TO SAVEPOINT sp"); err != nil {
			return err
		}
		pc, err = s.AppendTx(ctx, tx, c, eventfold.NoStream, ev("C", `1`))
		return err
	})
	require.NoError(t, err)
	require.Equal(t, pa[0].GlobalPosition+2, pc[0].GlobalPosition, "the index continues after the savepoint rollback")
	require.Equal(t, pa[0].GlobalPosition>>20, pc[0].GlobalPosition>>20, "one transaction, one slot")
	vb, err := s.StreamVersion(ctx, b)
	require.NoError(t, err)
	require.Zero(t, vb, "rolled back to the savepoint")
}

func TestTransactionSlotLimit(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	tx, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, tx) }()
	// Fill the transaction's slot up to its last position by hand, rather
	// than appending a million events.
	_, err = tx.Exec(ctx, `INSERT INTO eventfold.events (global_position, stream_id, stream_version, event_id, event_type, data)
		VALUES ((pg_current_xact_id()::text::bigint << 20) + 1048575, $1, 1, gen_random_uuid(), 'Filler', '1')`, streamID(t, "filler"))
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, tx, streamID(t, "s"), eventfold.Any, ev("TooMany", `1`))
	require.Error(t, err)
	require.Equal(t, "54000", sqlState(err))
	require.Contains(t, err.Error(), "at most 1048576 events")
}

func TestEventDataRoundTrip(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	id := streamID(t, "s")
	payloads := []string{`null`, `"text with ünïcode"`, `[1,2,{"a":null}]`, `{"nested":{"n":1.5}}`, `true`}
	var evs []eventfold.EventData
	for _, p := range payloads {
		evs = append(evs, ev("P", p))
	}
	_, err := s.Append(ctx, id, eventfold.NoStream, evs...)
	require.NoError(t, err)
	got, err := s.ReadStream(ctx, id, eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, got, len(payloads))
	for i, p := range payloads {
		require.JSONEq(t, p, string(got[i].Data))
		require.True(t, json.Valid(got[i].Metadata))
	}
}
