package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestReadAllWaitsForAnAllocatedPositionWithoutARow provokes the window
// that the locking re-read alone cannot see since 00015: a position taken
// from AUTO_INCREMENT by an append that is still running but whose row is
// not in the index (yet). Appender A takes the gate as the procedures do,
// then an INSERT that allocates position 2 and fails (a duplicate event id)
// leaves 2 allocated with no row while A goes on. B appends and commits 3.
// A reader at 2 sees 3, and the locking read of [2, 3) finds nothing; it
// must not pass 2: it takes the gate, which waits for A. A then writes
// position 2 (as an INSERT whose index entry came late would) and commits:
// the reader returns 2, 3. When A rolls back instead, 2 is dead and the
// reader returns 3 at once. Without the gate the reader returned 3 while A
// was still running, and lost 2 when A committed.
func TestReadAllWaitsForAnAllocatedPositionWithoutARow(t *testing.T) {
	t.Parallel()
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprintf("commit=%v", commit), func(t *testing.T) {
			t.Parallel()
			db := latestDB(t)
			ctx := context.Background()
			ops := mysqlops.New(db)
			first, err := ops.Append(ctx, "s-1", eventfold.NoStream, []eventfold.EventData{newEvent("First")})
			require.NoError(t, err)
			require.Equal(t, int64(1), first[0].GlobalPosition)

			txA := begin(t, db)
			_, err = txA.ExecContext(ctx, `SELECT id FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE`)
			require.NoError(t, err)
			_, err = txA.ExecContext(ctx, `INSERT INTO eventfold_events
				(stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
				VALUES ('s-a', 1, ?, 'Dup', '{}', '{}', UTC_TIMESTAMP(6))`, first[0].ID)
			require.Error(t, err, "a duplicate event id: position 2 is allocated, no row")

			evB, err := ops.Append(ctx, "s-b", eventfold.NoStream, []eventfold.EventData{newEvent("B")})
			require.NoError(t, err, "B does not wait for A")
			require.Equal(t, int64(3), evB[0].GlobalPosition)

			gates := mysqlops.GateTakes()
			got := make(chan []int64, 1)
			go func() {
				evs, err := ops.ReadAll(ctx, 2, 10)
				if err != nil {
					t.Error(err)
				}
				got <- positionsOf(evs)
			}()
			select {
			case p := <-got:
				t.Fatalf("ReadAll returned %v while position 2 was allocated by a running append", p)
			case <-time.After(500 * time.Millisecond):
			}
			require.Greater(t, mysqlops.GateTakes(), gates, "the reader is waiting on the gate")

			if commit {
				insertRawTx(t, txA, 2, "s-a")
				require.NoError(t, txA.Commit())
			} else {
				require.NoError(t, txA.Rollback())
			}
			select {
			case p := <-got:
				if commit {
					require.Equal(t, []int64{2, 3}, p)
				} else {
					require.Equal(t, []int64{3}, p, "the dead position is passed")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("ReadAll did not return after the appender ended")
			}
			// New appends went on after the reader let the gate go.
			evC, err := ops.Append(ctx, "s-c", eventfold.NoStream, []eventfold.EventData{newEvent("C")})
			require.NoError(t, err)
			require.Equal(t, int64(4), evC[0].GlobalPosition)
		})
	}
}

func insertRawTx(t *testing.T, tx *sql.Tx, pos int64, stream string) {
	t.Helper()
	e := newEvent("Late")
	_, err := tx.ExecContext(context.Background(), `INSERT INTO eventfold_events
		(global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
		VALUES (?, ?, 1, ?, ?, ?, ?, UTC_TIMESTAMP(6))`, pos, stream, e.ID, e.Type, e.Data, e.Metadata)
	require.NoError(t, err)
}

// TestHeadWaitsForRunningAppends: Head is the position up to which the
// log is complete, so with position 1 held by a running append and 2
// committed it waits (for at most a second: a longer gate wait stops every
// new append, see TestGateWaitDoesNotStopAppends) and never answers past
// the undecided position; once the append has ended it answers 2.
func TestHeadWaitsForRunningAppends(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	txA := begin(t, db)
	_, err := mysqlops.New(txA).Append(ctx, "a", eventfold.NoStream, []eventfold.EventData{newEvent("A")})
	require.NoError(t, err)
	_, err = ops.Append(ctx, "b", eventfold.NoStream, []eventfold.EventData{newEvent("B")})
	require.NoError(t, err)
	last, err := ops.LastPosition(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), last, "LastPosition does not wait")
	head := make(chan int64, 1)
	go func() {
		h, err := ops.Head(ctx)
		if err != nil {
			t.Error(err)
		}
		head <- h
	}()
	select {
	case h := <-head:
		t.Fatalf("Head returned %d at once while position 1 was undecided", h)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, txA.Rollback())
	select {
	case h := <-head:
		// 2 when the gate was granted after the rollback; 0 when its
		// short wait ran out before it (a loaded machine): never 1 or more
		// while 1 was undecided.
		require.Contains(t, []int64{0, 2}, h)
	case <-time.After(10 * time.Second):
		t.Fatal("Head did not return")
	}
	require.Eventually(t, func() bool {
		h, err := ops.Head(ctx)
		require.NoError(t, err)
		return h == 2
	}, 10*time.Second, 50*time.Millisecond, "Head answers 2 once the append has ended")
}

// TestMultiEventAppendsLeaveNoDeadPositions: the procedures insert in
// chunks of 2^k - 1 rows because an INSERT ... SELECT reserves
// auto-increment values 1, 2, 4, ... and loses what it does not use (a
// plain 2-row INSERT ... SELECT left one dead position behind). Appends of
// 1 to 20 events, one after another, must leave the positions dense, and
// each append's positions ascend with its versions.
func TestMultiEventAppendsLeaveNoDeadPositions(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	next := int64(1)
	for n := 1; n <= 20; n++ {
		evs := make([]eventfold.EventData, n)
		for i := range evs {
			evs[i] = newEvent("E")
		}
		got, err := ops.Append(ctx, fmt.Sprintf("multi-%d", n), eventfold.NoStream, evs)
		require.NoError(t, err)
		for i, e := range got {
			require.Equal(t, next, e.GlobalPosition, "append of %d events, event %d", n, i)
			require.Equal(t, int64(i+1), e.StreamVersion)
			next++
		}
		// And the DBA-facing procedure alike.
		ids := make([]string, n)
		for i := range ids {
			ids[i] = newEvent("E").ID
		}
		rows, err := db.QueryContext(ctx, `CALL eventfold_append_events(?, -2, ?)`, fmt.Sprintf("call-%d", n), procEvents(ids...))
		require.NoError(t, err)
		var count int
		for rows.Next() {
			var pos, version int64
			var at time.Time
			require.NoError(t, rows.Scan(&pos, &version, &at))
			require.Equal(t, next, pos, "CALL of %d events", n)
			next++
			count++
		}
		require.NoError(t, errors.Join(rows.Err(), rows.Close()))
		require.Equal(t, n, count)
	}
	all, err := ops.ReadAll(ctx, 0, 1000)
	require.NoError(t, err)
	require.Len(t, all, int(next-1))
}

// TestAppendMany: one CALL for several streams, the same stream twice
// included, returns what Append would have for each element, in order; a
// refused expectation or a duplicate event id names its element and
// leaves nothing behind.
func TestAppendMany(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)
	_, err := ops.Append(ctx, "old", eventfold.NoStream, []eventfold.EventData{newEvent("Old")})
	require.NoError(t, err)

	data := newEvent("WithMeta")
	data.Data = []byte(`{"k" : [1, 2],  "s": "<&>"}`)
	data.Metadata = []byte(`{"m": "ü"}`)
	batch := []contract.StreamAppend{
		{StreamID: "new-ä", Expected: eventfold.NoStream, Events: []eventfold.EventData{newEvent("A1"), data}},
		{StreamID: "old", Expected: eventfold.Exact(1), Events: []eventfold.EventData{newEvent("B1")}},
		{StreamID: "new-ä", Expected: eventfold.Exact(2), Events: []eventfold.EventData{newEvent("A3")}},
		{StreamID: "any", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("C1"), newEvent("C2"), newEvent("C3")}},
		{StreamID: "old", Expected: eventfold.StreamExists, Events: []eventfold.EventData{newEvent("B2")}},
	}
	tx := begin(t, db)
	got, err := mysqlops.New(tx).AppendMany(ctx, batch)
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.Len(t, got, len(batch))
	all, err := ops.ReadAll(ctx, 2, 100)
	require.NoError(t, err)
	var flat []eventfold.Event
	for i, evs := range got {
		require.Len(t, evs, len(batch[i].Events))
		for j, e := range evs {
			require.Equal(t, batch[i].StreamID, e.StreamID)
			require.Equal(t, batch[i].Events[j].ID, e.ID)
		}
		flat = append(flat, evs...)
	}
	require.Equal(t, all, flat, "the results are the events as recorded, in batch order")
	require.Equal(t, []int64{1, 2, 3}, []int64{got[0][0].StreamVersion, got[0][1].StreamVersion, got[2][0].StreamVersion})
	require.Equal(t, []int64{2, 3}, []int64{got[1][0].StreamVersion, got[4][0].StreamVersion})
	require.Equal(t, `{"k":[1,2],"s":"<&>"}`, string(got[0][1].Data), "compacted, not escaped")
	for i := 1; i < len(flat); i++ {
		require.Equal(t, flat[i-1].GlobalPosition+1, flat[i].GlobalPosition, "one batch, dense positions")
	}

	for _, tc := range []struct {
		name  string
		batch []contract.StreamAppend
		index int
		is    error
	}{
		{"wrong version", []contract.StreamAppend{
			{StreamID: "x1", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("X")}},
			{StreamID: "old", Expected: eventfold.Exact(1), Events: []eventfold.EventData{newEvent("X")}},
		}, 1, eventfold.ErrWrongExpectedVersion},
		{"no stream", []contract.StreamAppend{
			{StreamID: "x2", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("X")}},
			{StreamID: "x3", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("X")}},
			{StreamID: "old", Expected: eventfold.NoStream, Events: []eventfold.EventData{newEvent("X")}},
		}, 2, eventfold.ErrWrongExpectedVersion},
		{"duplicate id", []contract.StreamAppend{
			{StreamID: "x4", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("X")}},
			{StreamID: "x5", Expected: eventfold.Any, Events: []eventfold.EventData{newEvent("X"), {ID: all[0].ID, Type: "X", Data: []byte(`{}`)}}},
		}, 1, eventfold.ErrDuplicateEventID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := ops.ReadAll(ctx, 0, 1000)
			require.NoError(t, err)
			tx := begin(t, db)
			_, err = mysqlops.New(tx).AppendMany(ctx, tc.batch)
			var me *contract.AppendManyError
			require.ErrorAs(t, err, &me)
			require.Equal(t, tc.index, me.Index)
			require.ErrorIs(t, err, tc.is)
			if errors.Is(tc.is, eventfold.ErrWrongExpectedVersion) {
				var we *eventfold.WrongExpectedVersionError
				require.ErrorAs(t, err, &we)
				require.Equal(t, tc.batch[tc.index].StreamID, we.StreamID)
			}
			// The procedure rolled back to its savepoint: committing the
			// caller's transaction commits nothing of the batch.
			require.NoError(t, tx.Commit())
			after, err := ops.ReadAll(ctx, 0, 1000)
			require.NoError(t, err)
			require.Equal(t, before, after)
			for _, a := range tc.batch {
				v, err := ops.StreamVersion(ctx, a.StreamID)
				require.NoError(t, err)
				if a.StreamID != "old" {
					require.Zero(t, v, a.StreamID)
				}
			}
		})
	}
}

// TestUpgradeTo00015KeepsData migrates a log written under 00013 (the
// position counter, with its top positions archived away so that the
// counter is above the highest event) to 00015: the events read back as
// they were, new positions continue above every position ever handed out,
// and Down goes back to the counter, which continues above them all.
func TestUpgradeTo00015KeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 13)
	require.NoError(t, err)

	ops := mysqlops.New(db) // runs eventfold_append_events: 00015's procedures are missing
	_, err = ops.Append(ctx, "konto-ä", eventfold.NoStream, []eventfold.EventData{newEvent("A"), newEvent("B")})
	require.NoError(t, err)
	_, err = ops.Append(ctx, "other", eventfold.NoStream, []eventfold.EventData{newEvent("C"), newEvent("D")})
	require.NoError(t, err)
	// Archive the top event away: the counter (4) stays above the log (3).
	n, err := ops.DeleteEventRange(ctx, 4, 4)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	before, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, before, 3)

	_, err = p.Up(ctx)
	require.NoError(t, err, "up to 00015 with data")
	after, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, before, after, "the events read back as they were")
	var extra string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT extra FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'eventfold_events' AND column_name = 'global_position'`).Scan(&extra))
	require.Contains(t, extra, "auto_increment")

	more, err := ops.Append(ctx, "konto-ä", eventfold.Exact(2), []eventfold.EventData{newEvent("E")})
	require.NoError(t, err)
	require.Equal(t, int64(5), more[0].GlobalPosition, "above the archived position 4")
	require.Equal(t, int64(3), more[0].StreamVersion)
	batch, err := ops.AppendMany(ctx, []contract.StreamAppend{
		{StreamID: "other", Expected: eventfold.Exact(2), Events: []eventfold.EventData{newEvent("F"), newEvent("G")}},
	})
	require.NoError(t, err)
	require.Equal(t, []int64{6, 7}, positionsOf(batch[0]))

	_, err = p.DownTo(ctx, 13)
	require.NoError(t, err, "down to 00013")
	var last int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&last))
	require.Equal(t, int64(7), last, "the counter is raised to the highest position")
	back, err := ops.Append(ctx, "other", eventfold.Exact(4), []eventfold.EventData{newEvent("H")})
	require.NoError(t, err)
	require.Equal(t, int64(8), back[0].GlobalPosition)
	_, err = p.Up(ctx)
	require.NoError(t, err, "up again")
	again, err := ops.Append(ctx, "other", eventfold.Exact(5), []eventfold.EventData{newEvent("I")})
	require.NoError(t, err)
	require.Equal(t, int64(9), again[0].GlobalPosition)
	all, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 5, 6, 7, 8, 9}, positionsOf(all))
}

// TestDownBelow00015KeepsArchivedPositionsDead: positions handed out at
// 00015 and archived away (esctl archive: the watermark moves, the events
// are deleted) above every event left are never handed out again after a
// Down below 00015: the counter goes on above them. 00015's Down alone
// raised it to the highest event left, so the next append took an
// archived position again (checked: without 00016 this test fails, the
// counter at 2, so the next append would take the archived position 3). Starts from 00015 with data, goes up to 00016, down to 13
// and up again.
func TestDownBelow00015KeepsArchivedPositionsDead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 15)
	require.NoError(t, err)
	ops := mysqlops.New(db)
	_, err = ops.Append(ctx, "kept", eventfold.NoStream, []eventfold.EventData{newEvent("A"), newEvent("B")})
	require.NoError(t, err)
	top, err := ops.Append(ctx, "archived", eventfold.NoStream, []eventfold.EventData{newEvent("C"), newEvent("D")})
	require.NoError(t, err)
	require.Equal(t, []int64{3, 4}, positionsOf(top))
	before, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)

	_, err = p.Up(ctx)
	require.NoError(t, err, "up from 00015 with data")
	after, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, before, after, "the events read back as they were")

	// Archive positions 3 and 4, the top of the log, as esctl archive does.
	require.NoError(t, ops.SetArchivedBefore(ctx, 5))
	n, err := ops.DeleteEventRange(ctx, 3, 4)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	_, err = p.DownTo(ctx, 13)
	require.NoError(t, err, "down below 00015")
	var last int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&last))
	require.Equal(t, int64(4), last, "the counter is above the archived positions")
	evs, err := ops.Append(ctx, "kept", eventfold.Exact(2), []eventfold.EventData{newEvent("E")})
	require.NoError(t, err)
	require.Equal(t, int64(5), evs[0].GlobalPosition, "not an archived position again")

	_, err = p.Up(ctx)
	require.NoError(t, err, "up again")
	evs, err = ops.Append(ctx, "kept", eventfold.Exact(3), []eventfold.EventData{newEvent("F")})
	require.NoError(t, err)
	require.Equal(t, int64(6), evs[0].GlobalPosition)
	all, err := ops.ReadAll(ctx, 5, 10)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6}, positionsOf(all))
	_, err = p.DownTo(ctx, 15)
	require.NoError(t, err, "down to 00015")
	_, err = p.Up(ctx)
	require.NoError(t, err, "and up")
}
