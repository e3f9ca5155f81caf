package mysql_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAppendExpectedVersions runs every expectation against a missing
// stream and against a stream at version 2, each append in a transaction.
func TestAppendExpectedVersions(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()

	cases := []struct {
		name     string
		existing int // events already in the stream
		expected eventfold.ExpectedVersion
		ok       bool
	}{
		{"missing/any", 0, eventfold.Any, true},
		{"missing/no-stream", 0, eventfold.NoStream, true},
		{"missing/exact-0", 0, eventfold.Exact(0), true},
		{"missing/exists", 0, eventfold.StreamExists, false},
		{"missing/exact-2", 0, eventfold.Exact(2), false},
		{"at-2/any", 2, eventfold.Any, true},
		{"at-2/no-stream", 2, eventfold.NoStream, false},
		{"at-2/exact-0", 2, eventfold.Exact(0), false},
		{"at-2/exists", 2, eventfold.StreamExists, true},
		{"at-2/exact-2", 2, eventfold.Exact(2), true},
		{"at-2/exact-1", 2, eventfold.Exact(1), false},
		{"at-2/exact-3", 2, eventfold.Exact(3), false},
	}
	for _, tc := range cases {
		stream := "expect-" + tc.name
		if tc.existing > 0 {
			_, err := appendTx(t, db, stream, eventfold.NoStream, newEvent("A"), newEvent("B"))
			require.NoError(t, err, tc.name)
		}
		headBefore, err := mysqlops.New(db).Head(ctx)
		require.NoError(t, err)

		sent := []eventfold.EventData{newEvent("C"), newEvent("D")}
		before := time.Now().UTC()
		tx := begin(t, db)
		got, err := mysqlops.New(tx).Append(ctx, stream, tc.expected, sent)
		if !tc.ok {
			require.Error(t, err, tc.name)
			require.ErrorIs(t, err, eventfold.ErrWrongExpectedVersion, tc.name)
			var wev *eventfold.WrongExpectedVersionError
			require.ErrorAs(t, err, &wev, tc.name)
			require.Equal(t, stream, wev.StreamID, tc.name)
			require.Equal(t, tc.expected, wev.Expected, tc.name)
			require.Equal(t, int64(tc.existing), wev.Actual, tc.name)
			require.NoError(t, tx.Rollback())
			v, err := mysqlops.New(db).StreamVersion(ctx, stream)
			require.NoError(t, err)
			require.Equal(t, int64(tc.existing), v, "%s: a refused append changes nothing", tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		require.NoError(t, tx.Commit())
		require.Len(t, got, 2, tc.name)
		for i, e := range got {
			require.Equal(t, headBefore+int64(i)+1, e.GlobalPosition, "%s: positions follow the head without gaps", tc.name)
			require.Equal(t, int64(tc.existing+i+1), e.StreamVersion, tc.name)
			require.Equal(t, stream, e.StreamID, tc.name)
			require.Equal(t, sent[i].ID, e.ID, tc.name)
			require.Equal(t, sent[i].Type, e.Type, tc.name)
			require.JSONEq(t, string(sent[i].Data), string(e.Data), tc.name)
			require.Equal(t, time.UTC, e.RecordedAt.Location(), tc.name)
			require.WithinDuration(t, before, e.RecordedAt, 5*time.Second, tc.name)
		}
		// What the append returned is what a read returns.
		read, err := mysqlops.New(db).ReadStream(ctx, stream, int64(tc.existing+1), 10, false)
		require.NoError(t, err)
		require.Len(t, read, 2)
		for i := range read {
			require.Equal(t, got[i].GlobalPosition, read[i].GlobalPosition)
			require.Equal(t, got[i].ID, read[i].ID)
			require.True(t, got[i].RecordedAt.Equal(read[i].RecordedAt), "recorded_at round-trips with microseconds")
			require.JSONEq(t, string(got[i].Metadata), string(read[i].Metadata))
		}
		v, err := mysqlops.New(db).StreamVersion(ctx, stream)
		require.NoError(t, err)
		require.Equal(t, int64(tc.existing+2), v, tc.name)
	}
}

// TestAppendWithoutTransaction: on a pool the append runs in a transaction
// of its own, so an append that fails half-way leaves nothing behind.
func TestAppendWithoutTransaction(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	ops := mysqlops.New(db)

	first := newEvent("First")
	_, err := ops.Append(ctx, "pool-a", eventfold.NoStream, []eventfold.EventData{first})
	require.NoError(t, err)

	// The second event repeats an existing id: the insert fails after the
	// stream row was created and positions were taken.
	_, err = ops.Append(ctx, "pool-b", eventfold.NoStream, []eventfold.EventData{newEvent("X"), first})
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
	require.NotErrorIs(t, err, eventfold.ErrWrongExpectedVersion)

	v, err := ops.StreamVersion(ctx, "pool-b")
	require.NoError(t, err)
	require.Equal(t, int64(0), v)
	var streams, events int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_streams`).Scan(&streams))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events`).Scan(&events))
	require.Equal(t, int64(1), streams)
	require.Equal(t, int64(1), events, "nothing of the failed append is left")

	// Since 00015 the failed append's positions stay dead (AUTO_INCREMENT
	// does not give them back); readers pass them.
	evs, err := ops.Append(ctx, "pool-b", eventfold.NoStream, []eventfold.EventData{newEvent("Y")})
	require.NoError(t, err)
	require.Greater(t, evs[0].GlobalPosition, int64(1))
	all, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, all, 2)
	require.Equal(t, evs[0].ID, all[1].ID)
}

// TestDuplicateEventID: an event id that is already in the log, in any
// stream, fails the append with ErrDuplicateEventID.
func TestDuplicateEventID(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	e := newEvent("Once")
	_, err := appendTx(t, db, "dup-a", eventfold.Any, e)
	require.NoError(t, err)

	_, err = appendTx(t, db, "dup-b", eventfold.Any, e)
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
	var me *mysql.MySQLError
	require.ErrorAs(t, err, &me, "the driver's error stays reachable")
	require.Equal(t, uint16(1062), me.Number)

	_, err = appendTx(t, db, "dup-a", eventfold.Exact(1), e)
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID, "same stream, right version, same id")
}

// TestMetadataAndPayloads: metadata left empty is stored as {}, JSON null
// and scalar payloads survive, and text outside ASCII round-trips in a
// database whose default character set is latin1.
func TestMetadataAndPayloads(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	sent := []eventfold.EventData{
		{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Type: "Nothing", Data: json.RawMessage(`null`)},
		{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", Type: "Number", Data: json.RawMessage(`42`), Metadata: json.RawMessage(`{}`)},
		{ID: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", Type: "Ünïcödé ✓", Data: json.RawMessage(`{"name": "Zoë 🎉", "html": "<b>&</b>"}`), Metadata: json.RawMessage(`{"k": "日本"}`)},
	}
	stream := "Strøm-🎉"
	got, err := appendTx(t, db, stream, eventfold.NoStream, sent...)
	require.NoError(t, err)
	require.JSONEq(t, `{}`, string(got[0].Metadata))

	read, err := mysqlops.New(db).ReadStream(ctx, stream, 1, 10, false)
	require.NoError(t, err)
	require.Len(t, read, 3)
	require.JSONEq(t, `null`, string(read[0].Data))
	require.JSONEq(t, `{}`, string(read[0].Metadata))
	require.JSONEq(t, `42`, string(read[1].Data))
	require.Equal(t, "Ünïcödé ✓", read[2].Type)
	require.Equal(t, stream, read[2].StreamID)
	require.JSONEq(t, string(sent[2].Data), string(read[2].Data))
	require.JSONEq(t, string(sent[2].Metadata), string(read[2].Metadata))
}

// TestProcedureRejectsBadInput calls the procedure directly, as a DBA
// might, with arguments the Go side never sends.
func TestProcedureRejectsBadInput(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	bad := []struct {
		name     string
		stream   string
		expected int64
		events   string
	}{
		{"empty array", "s", -1, `[]`},
		{"object", "s", -1, `{"id": "x"}`},
		{"not json", "s", -1, `nope`},
		{"no type", "s", -1, `[{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "data": {}}]`},
		{"no data", "s", -1, `[{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "type": "T"}]`},
		{"no id", "s", -1, `[{"type": "T", "data": {}}]`},
		{"array metadata", "s", -1, `[{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "type": "T", "data": {}, "metadata": []}]`},
		{"empty stream", "", -1, `[{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "type": "T", "data": {}}]`},
		{"bad expectation", "s", -4, `[{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "type": "T", "data": {}}]`},
	}
	for _, tc := range bad {
		tx := begin(t, db)
		rows, err := tx.QueryContext(ctx, `CALL eventfold_append_events(?, ?, ?)`, tc.stream, tc.expected, tc.events)
		if err == nil {
			rows.Close()
		}
		var me *mysql.MySQLError
		require.True(t, errors.As(err, &me), "%s: want a server error, got %v", tc.name, err)
		require.Equal(t, uint16(31002), me.Number, "%s: %s", tc.name, me.Message)
		require.NoError(t, tx.Rollback())
	}
	var n int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
	require.Zero(t, n)
}
