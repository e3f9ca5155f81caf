// Package contracttest is the conformance suite of the store/dialect
// contract (package internal/contract): one set of tests over every
// operation, which every dialect and driver runs (see
// integration/contract_test.go), so that the dialects cannot drift apart
// in behaviour while they agree in signature.
package contracttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// Exercise runs the conformance suite. newStore returns a store on a
// fresh, fully migrated database of its own; it is called once per
// sub-test.
func Exercise[TTx any](t *testing.T, newStore func(t *testing.T) *eventfold.Store[TTx]) {
	ctx := context.Background()
	inTx := func(t *testing.T, s *eventfold.Store[TTx], fn func(ops contract.Ops) error) error {
		return s.InTx(ctx, func(tx TTx) error { return fn(s.Driver().OpsTx(tx)) })
	}
	data := func(i int) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)) }
	// Ops take input as Store leaves it: validated, ids filled in.
	ev := func(typ string, i int) contract.EventData {
		return contract.EventData{ID: uuid.NewString(), Type: typ, Data: data(i), Metadata: json.RawMessage(`{}`)}
	}
	appendE := func(ops contract.Ops, stream string, n int) ([]contract.Event, error) {
		var evs []contract.EventData
		for i := range n {
			evs = append(evs, ev("T", i))
		}
		return ops.Append(ctx, stream, eventfold.Any, evs)
	}
	appendN := func(t *testing.T, ops contract.Ops, stream string, n int) []contract.Event {
		out, err := appendE(ops, stream, n)
		require.NoError(t, err)
		require.Len(t, out, n)
		return out
	}

	// waitHorizon waits until the gap-free horizon passes pos: on
	// PostgreSQL any transaction running anywhere in the cluster holds it
	// back for a moment (lag, never loss).
	waitHorizon := func(t *testing.T, ops contract.Ops, pos int64) {
		require.Eventually(t, func() bool {
			h, err := ops.Head(ctx)
			return err == nil && h >= pos
		}, 30*time.Second, 10*time.Millisecond, "the horizon reaches %d", pos)
	}

	t.Run("log", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		head, err := ops.Head(ctx)
		require.NoError(t, err)
		require.Zero(t, head, "empty log")
		a := appendN(t, ops, "a", 2)
		b := appendN(t, ops, "b", 1)
		require.Less(t, a[1].GlobalPosition, b[0].GlobalPosition)
		require.Equal(t, []int64{1, 2}, []int64{a[0].StreamVersion, a[1].StreamVersion})
		_, err = ops.Append(ctx, "a", eventfold.Exact(1), []contract.EventData{ev("T", 9)})
		var wrong *eventfold.WrongExpectedVersionError
		require.ErrorAs(t, err, &wrong)
		_, err = ops.Append(ctx, "c", eventfold.Any, []contract.EventData{{ID: a[0].ID, Type: "T", Data: data(9), Metadata: json.RawMessage(`{}`)}})
		require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)

		waitHorizon(t, ops, b[0].GlobalPosition)
		all, err := ops.ReadAll(ctx, 0, 10)
		require.NoError(t, err)
		require.Len(t, all, 3)
		require.Equal(t, b[0].GlobalPosition, all[2].GlobalPosition)
		fwd, err := ops.ReadStream(ctx, "a", 2, 10, false)
		require.NoError(t, err)
		require.Len(t, fwd, 1)
		back, err := ops.ReadStream(ctx, "a", 0, 10, true)
		require.NoError(t, err)
		require.Equal(t, int64(2), back[0].StreamVersion, "backward from the end")
		v, err := ops.StreamVersion(ctx, "a")
		require.NoError(t, err)
		require.Equal(t, int64(2), v)
		v, err = ops.StreamVersion(ctx, "none")
		require.NoError(t, err)
		require.Zero(t, v)
		head, err = ops.Head(ctx)
		require.NoError(t, err)
		last, err := ops.LastPosition(ctx)
		require.NoError(t, err)
		require.Equal(t, b[0].GlobalPosition, head)
		require.Equal(t, head, last, "no transaction runs: the horizon is the last position")
	})

	t.Run("append-many", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		pre := appendN(t, ops, "c", 1)
		many := func(appends []contract.StreamAppend) (out [][]contract.Event, err error) {
			// A failed AppendMany may leave part of the batch written: the
			// transaction is rolled back, as the contract asks.
			err = inTx(t, s, func(o contract.Ops) (err error) { out, err = o.AppendMany(ctx, appends); return err })
			return out, err
		}
		e1, e2, e3, e4 := ev("T", 1), ev("U", 2), ev("T", 3), ev("T", 4)
		out, err := many([]contract.StreamAppend{
			{StreamID: "a", Expected: eventfold.NoStream, Events: []contract.EventData{e1, e2}},
			{StreamID: "b", Expected: eventfold.Any, Events: []contract.EventData{e3}},
			{StreamID: "a", Expected: eventfold.Exact(2), Events: []contract.EventData{e4}},
			{StreamID: "c", Expected: eventfold.Exact(1), Events: []contract.EventData{ev("T", 5)}},
		})
		require.NoError(t, err)
		require.Len(t, out, 4)
		require.Len(t, out[0], 2)
		require.Len(t, out[1], 1)
		require.Len(t, out[2], 1)
		require.Len(t, out[3], 1)
		var flat []contract.Event
		for _, evs := range out {
			flat = append(flat, evs...)
		}
		for i := 1; i < len(flat); i++ {
			require.Less(t, flat[i-1].GlobalPosition, flat[i].GlobalPosition, "positions follow the order of the batch")
		}
		require.Greater(t, flat[0].GlobalPosition, pre[0].GlobalPosition)
		require.Equal(t, []int64{1, 2, 1, 3, 2}, []int64{flat[0].StreamVersion, flat[1].StreamVersion, flat[2].StreamVersion, flat[3].StreamVersion, flat[4].StreamVersion})
		require.Equal(t, []string{"a", "a", "b", "a", "c"}, []string{flat[0].StreamID, flat[1].StreamID, flat[2].StreamID, flat[3].StreamID, flat[4].StreamID})
		require.Equal(t, []string{e1.ID, e2.ID, e3.ID, e4.ID}, []string{flat[0].ID, flat[1].ID, flat[2].ID, flat[3].ID})
		require.Equal(t, "U", flat[1].Type)
		require.JSONEq(t, `{"i":3}`, string(flat[2].Data))
		a, err := ops.ReadStream(ctx, "a", 1, 10, false)
		require.NoError(t, err)
		require.Len(t, a, 3)
		for i, want := range []contract.Event{flat[0], flat[1], flat[3]} {
			require.Equal(t, want.GlobalPosition, a[i].GlobalPosition, "the results are the events as recorded")
			require.Equal(t, want.ID, a[i].ID)
			require.Equal(t, want.StreamVersion, a[i].StreamVersion)
			require.JSONEq(t, string(want.Data), string(a[i].Data))
			require.JSONEq(t, string(want.Metadata), string(a[i].Metadata))
			require.True(t, want.RecordedAt.Equal(a[i].RecordedAt), "recorded_at %v read back as %v", want.RecordedAt, a[i].RecordedAt)
		}

		// A wrong expected version of element 2 names element 2, and
		// nothing of the batch stays once the transaction is rolled back.
		_, err = many([]contract.StreamAppend{
			{StreamID: "x", Expected: eventfold.Any, Events: []contract.EventData{ev("T", 6)}},
			{StreamID: "b", Expected: eventfold.Exact(1), Events: []contract.EventData{ev("T", 7)}},
			{StreamID: "a", Expected: eventfold.Exact(2), Events: []contract.EventData{ev("T", 8)}},
		})
		var me *contract.AppendManyError
		require.ErrorAs(t, err, &me)
		require.Equal(t, 2, me.Index)
		var wrong *eventfold.WrongExpectedVersionError
		require.ErrorAs(t, err, &wrong)
		require.Equal(t, "a", wrong.StreamID)
		require.Equal(t, eventfold.Exact(2), wrong.Expected)
		require.Equal(t, int64(3), wrong.Actual)
		require.ErrorIs(t, err, eventfold.ErrWrongExpectedVersion)
		v, err := ops.StreamVersion(ctx, "x")
		require.NoError(t, err)
		require.Zero(t, v, "rolled back with the transaction")
		v, err = ops.StreamVersion(ctx, "b")
		require.NoError(t, err)
		require.Equal(t, int64(1), v)
		_, err = many([]contract.StreamAppend{
			{StreamID: "x", Expected: eventfold.NoStream, Events: []contract.EventData{ev("T", 6)}},
			{StreamID: "y", Expected: eventfold.StreamExists, Events: []contract.EventData{ev("T", 7)}},
		})
		require.ErrorAs(t, err, &me)
		require.Equal(t, 1, me.Index)
		require.ErrorAs(t, err, &wrong)
		require.Equal(t, "y", wrong.StreamID)

		// Duplicate event ids: one already in the log, and one twice in the
		// batch (in two elements).
		_, err = many([]contract.StreamAppend{
			{StreamID: "x", Expected: eventfold.Any, Events: []contract.EventData{ev("T", 9)}},
			{StreamID: "y", Expected: eventfold.Any, Events: []contract.EventData{{ID: flat[2].ID, Type: "T", Data: data(9), Metadata: json.RawMessage(`{}`)}}},
		})
		require.ErrorAs(t, err, &me)
		require.Equal(t, 1, me.Index)
		require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
		twice := ev("T", 10)
		_, err = many([]contract.StreamAppend{
			{StreamID: "x", Expected: eventfold.Any, Events: []contract.EventData{ev("T", 11)}},
			{StreamID: "y", Expected: eventfold.Any, Events: []contract.EventData{twice}},
			{StreamID: "z", Expected: eventfold.Any, Events: []contract.EventData{twice}},
		})
		require.ErrorAs(t, err, &me)
		require.Equal(t, 2, me.Index)
		require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
		for _, id := range []string{"x", "y", "z"} {
			v, err := ops.StreamVersion(ctx, id)
			require.NoError(t, err)
			require.Zero(t, v, "stream %s: rolled back with the transaction", id)
		}

		// Through the store: bad input is refused before any SQL, naming
		// the element.
		err = s.InTx(ctx, func(tx TTx) error {
			_, err := s.AppendManyTx(ctx, tx, []eventfold.StreamAppend{
				{StreamID: "x", Expected: eventfold.Any, Events: []eventfold.EventData{{Type: "T", Data: data(1)}}},
				{StreamID: "", Expected: eventfold.Any, Events: []eventfold.EventData{{Type: "T", Data: data(2)}}},
			})
			return err
		})
		require.ErrorAs(t, err, &me)
		require.Equal(t, 1, me.Index)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput)
		var got [][]eventfold.Event
		require.NoError(t, s.InTx(ctx, func(tx TTx) (err error) {
			got, err = s.AppendManyTx(ctx, tx, []eventfold.StreamAppend{
				{StreamID: "x", Expected: eventfold.NoStream, Events: []eventfold.EventData{{Type: "T", Data: data(1)}}},
				{StreamID: "b", Expected: eventfold.Exact(1), Events: []eventfold.EventData{{Type: "T", Data: data(2)}, {Type: "T", Data: data(3)}}},
			})
			return err
		}))
		require.Len(t, got, 2)
		require.Equal(t, int64(1), got[0][0].StreamVersion)
		require.Equal(t, []int64{2, 3}, []int64{got[1][0].StreamVersion, got[1][1].StreamVersion})
		require.NotEmpty(t, got[1][1].ID, "the store fills in event ids")
	})

	t.Run("checkpoints-and-leases", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		rows, err := ops.ListCheckpoints(ctx)
		require.NoError(t, err)
		require.Empty(t, rows)
		require.NoError(t, inTx(t, s, func(o contract.Ops) error { return o.CreateCheckpoint(ctx, "b", 5) }))
		require.NoError(t, inTx(t, s, func(o contract.Ops) error { return o.CreateCheckpoint(ctx, "b", 9) }), "an existing checkpoint is left alone")
		require.NoError(t, inTx(t, s, func(o contract.Ops) error { return o.SetCheckpoint(ctx, "a", 3) }))
		pos, found, err := ops.GetCheckpoint(ctx, "b")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, int64(5), pos)
		var moved bool
		require.NoError(t, inTx(t, s, func(o contract.Ops) (err error) { moved, err = o.AdvanceCheckpoint(ctx, "b", 4, 7); return err }))
		require.False(t, moved, "not at the expected position")
		require.NoError(t, inTx(t, s, func(o contract.Ops) (err error) { moved, err = o.AdvanceCheckpoint(ctx, "b", 5, 7); return err }))
		require.True(t, moved)
		rows, err = ops.ListCheckpoints(ctx)
		require.NoError(t, err)
		require.Len(t, rows, 2)
		require.Equal(t, "a", rows[0].Name, "name order")
		require.Equal(t, int64(7), rows[1].Position)
		require.WithinDuration(t, time.Now(), rows[1].UpdatedAt, time.Hour)
		require.Equal(t, time.UTC, rows[1].UpdatedAt.Location())
		require.NoError(t, inTx(t, s, func(o contract.Ops) error { return o.DeleteCheckpoint(ctx, "a") }))
		_, found, err = ops.GetCheckpoint(ctx, "a")
		require.NoError(t, err)
		require.False(t, found)

		acquire := func(owner string) bool {
			var held bool
			require.NoError(t, inTx(t, s, func(o contract.Ops) (err error) { held, err = o.AcquireLease(ctx, "b", owner, time.Minute); return err }))
			return held
		}
		require.True(t, acquire("p1"))
		require.True(t, acquire("p1"), "renewed")
		require.False(t, acquire("p2"), "held by p1")
		owner, err := ops.LeaseOwner(ctx, "b")
		require.NoError(t, err)
		require.Equal(t, "p1", owner)
		require.NoError(t, inTx(t, s, func(o contract.Ops) error { return o.ReleaseLease(ctx, "b", "p1") }))
		owner, err = ops.LeaseOwner(ctx, "b")
		require.NoError(t, err)
		require.Empty(t, owner)
		require.True(t, acquire("p2"))
	})

	t.Run("commands", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		_, _, _, found, err := ops.LookupCommand(ctx, "", "c1")
		require.NoError(t, err)
		require.False(t, found)
		record := func(scope string) bool {
			var dup bool
			require.NoError(t, inTx(t, s, func(o contract.Ops) (err error) {
				dup, err = o.RecordCommand(ctx, scope, "c1", "Pay", "h1", []byte(`[{"s":"a","v":1}]`))
				return err
			}))
			return dup
		}
		require.False(t, record(""))
		require.True(t, record(""), "duplicate in the same scope")
		require.False(t, record("tenant-2"), "another scope is another key space")
		typ, hash, refs, found, err := ops.LookupCommand(ctx, "", "c1")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "Pay", typ)
		require.Equal(t, "h1", hash)
		require.JSONEq(t, `[{"s":"a","v":1}]`, string(refs))
		n, err := ops.PruneCommands(ctx, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Zero(t, n)
		n, err = ops.PruneCommands(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
	})

	t.Run("commit-markers", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		const id = "01890a5d-ac96-774b-bcce-b302099a8057"
		if !ops.Capabilities().CommitMarkers {
			require.ErrorIs(t, ops.WriteCommitMarker(ctx, id), contract.ErrUnsupported)
			_, err := ops.ClaimCommitMarker(ctx, id)
			require.ErrorIs(t, err, contract.ErrUnsupported)
			return
		}
		require.NoError(t, inTx(t, s, func(o contract.Ops) error { return o.WriteCommitMarker(ctx, id) }))
		committed, err := ops.ClaimCommitMarker(ctx, id)
		require.NoError(t, err)
		require.True(t, committed)
		committed, err = ops.ClaimCommitMarker(ctx, "01890a5d-ac96-774b-bcce-b302099a8058")
		require.NoError(t, err)
		require.False(t, committed, "never written")
		_, err = ops.PruneCommitMarkers(ctx, time.Now().Add(time.Hour))
		require.NoError(t, err)
	})

	t.Run("archive", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		evs := appendN(t, ops, "a", 3)
		w, err := ops.ArchivedBefore(ctx)
		require.NoError(t, err)
		require.Zero(t, w)
		first, err := ops.FirstPositionRecordedAt(ctx, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Equal(t, evs[0].GlobalPosition, first)
		require.NoError(t, inTx(t, s, func(o contract.Ops) error {
			if _, err := o.DeleteEventRange(ctx, evs[0].GlobalPosition, evs[1].GlobalPosition); err != nil {
				return err
			}
			return o.SetArchivedBefore(ctx, evs[2].GlobalPosition)
		}))
		w, err = ops.ArchivedBefore(ctx)
		require.NoError(t, err)
		require.Equal(t, evs[2].GlobalPosition, w)
		waitHorizon(t, ops, evs[2].GlobalPosition)
		left, err := ops.ReadAll(ctx, 0, 10)
		require.NoError(t, err)
		require.Len(t, left, 1)
		var n int64
		require.NoError(t, inTx(t, s, func(o contract.Ops) (err error) { n, err = o.RestoreEvents(ctx, evs); return err }))
		require.Equal(t, int64(2), n, "the present one is skipped")
		back, err := ops.ReadStream(ctx, "a", 1, 10, false)
		require.NoError(t, err)
		require.Len(t, back, 3)
		require.Equal(t, evs[0].ID, back[0].ID)
	})

	t.Run("stats", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		types, err := ops.StatsEventTypes(ctx)
		require.NoError(t, err)
		require.Empty(t, types)
		evs := appendN(t, ops, "a", 2)
		u, err := ops.Append(ctx, "b", eventfold.Any, []contract.EventData{ev("U", 1)})
		require.NoError(t, err)
		waitHorizon(t, ops, u[0].GlobalPosition)
		types, err = ops.StatsEventTypes(ctx)
		require.NoError(t, err)
		require.Equal(t, []contract.CountRow{{Key: "T", Events: 2}, {Key: "U", Events: 1}}, types)
		days, err := ops.StatsEventDays(ctx)
		require.NoError(t, err)
		require.Len(t, days, 1)
		require.Equal(t, time.Now().UTC().Format("2006-01-02"), days[0].Key)
		events, streams, firstPos, err := ops.StatsTotals(ctx)
		require.NoError(t, err)
		require.Equal(t, []int64{3, 2, evs[0].GlobalPosition}, []int64{events, streams, firstPos})
		after, err := ops.StatsEventsAfter(ctx, evs[0].GlobalPosition)
		require.NoError(t, err)
		require.Equal(t, int64(2), after)
	})

	t.Run("savepoints", func(t *testing.T) {
		s := newStore(t)
		require.NoError(t, inTx(t, s, func(o contract.Ops) error {
			if _, err := appendE(o, "kept", 1); err != nil {
				return err
			}
			if err := o.Savepoint(ctx, "eventfold_cmd"); err != nil {
				return err
			}
			if _, err := appendE(o, "undone", 1); err != nil {
				return err
			}
			if err := o.RollbackToSavepoint(ctx, "eventfold_cmd"); err != nil {
				return err
			}
			if err := o.Savepoint(ctx, "eventfold_cmd"); err != nil {
				return fmt.Errorf("the transaction stays usable: %w", err)
			}
			_, err := appendE(o, "kept", 1)
			return err
		}))
		ops := s.Driver().Ops()
		v, err := ops.StreamVersion(ctx, "kept")
		require.NoError(t, err)
		require.Equal(t, int64(2), v)
		v, err = ops.StreamVersion(ctx, "undone")
		require.NoError(t, err)
		require.Zero(t, v)
		for _, bad := range []string{"", "x; DROP TABLE y", "1abc", "a-b", "a b"} {
			require.ErrorIs(t, ops.Savepoint(ctx, bad), eventfold.ErrInvalidInput, "name %q", bad)
			require.ErrorIs(t, ops.RollbackToSavepoint(ctx, bad), eventfold.ErrInvalidInput, "name %q", bad)
		}
	})

	t.Run("errors", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		plain := errors.New("plain")
		require.NoError(t, ops.ClassifyError(nil))
		require.Same(t, plain, ops.ClassifyError(plain), "an error without a code is left alone")
		require.False(t, ops.ServerReported(plain))
		err := ops.Exec(ctx, "SELECT no_such_column FROM no_such_table_at_all")
		require.Error(t, err)
		require.True(t, ops.ServerReported(err), "the database reported %v", err)
		require.NotErrorIs(t, ops.ClassifyError(err), eventfold.ErrTransient, "a missing table is not transient")
	})

	t.Run("notify", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		if !ops.Capabilities().Notify {
			require.ErrorIs(t, ops.Notify(ctx, contract.DefaultChannel, "1"), contract.ErrUnsupported)
			require.ErrorIs(t, ops.EnableNotifyTrigger(ctx), contract.ErrUnsupported)
			require.NoError(t, ops.DisableNotifyTrigger(ctx), "no trigger is what was asked")
			return
		}
		require.NoError(t, ops.Notify(ctx, contract.DefaultChannel, "1"))
		require.NoError(t, ops.EnableNotifyTrigger(ctx))
		require.NoError(t, ops.EnableNotifyTrigger(ctx), "idempotent")
		appendN(t, ops, "a", 1)
		require.NoError(t, ops.DisableNotifyTrigger(ctx))
		require.NoError(t, ops.DisableNotifyTrigger(ctx), "idempotent")
	})

	t.Run("positions-and-identity", func(t *testing.T) {
		s := newStore(t)
		ops := s.Driver().Ops()
		pc, err := ops.CheckPositions(ctx, false)
		require.NoError(t, err)
		require.Equal(t, ops.Capabilities().PositionCheck, pc.Applicable)
		require.False(t, pc.Moved)
		require.NotEmpty(t, pc.Message)
		id, err := ops.StoreIdentity(ctx)
		require.NoError(t, err)
		require.NotEmpty(t, id, "migration 00009 made one")
	})
}
