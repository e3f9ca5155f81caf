package mssql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	mssql "github.com/microsoft/go-mssqldb"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// The live tests need a real SQL Server: set EVENTFOLD_MSSQL_DSN to a
// go-mssqldb URL of a scratch database, e.g.
//
//	EVENTFOLD_MSSQL_DSN='sqlserver://sa:Passw0rd!@localhost:1433?database=eventfold_test' go test ./internal/dialect/mssql/
//
// TestLiveMigrateDownUp migrates that database down to nothing and up
// again, so never point it at a database that matters.

const liveDSNVar = "EVENTFOLD_MSSQL_DSN"

var (
	liveOnce sync.Once
	liveConn *sql.DB
	liveErr  error
)

// liveDB returns a migrated database, or skips the test without one.
func liveDB(t *testing.T) *sql.DB {
	t.Helper()
	dsn := os.Getenv(liveDSNVar)
	if dsn == "" {
		t.Skipf("%s is not set: these tests need a real SQL Server scratch database (see live_test.go)", liveDSNVar)
	}
	liveOnce.Do(func() {
		liveConn, liveErr = sql.Open("sqlserver", dsn)
		if liveErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if liveErr = liveConn.PingContext(ctx); liveErr != nil {
			return
		}
		liveErr = migrateUp(ctx, liveConn)
	})
	require.NoError(t, liveErr)
	return liveConn
}

func migrateUp(ctx context.Context, db *sql.DB) error {
	p, err := eventfold.NewMigrator(eventfold.SQLServer, db)
	if err != nil {
		return err
	}
	_, err = p.Up(ctx)
	return err
}

func liveCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newStream returns a stream id no earlier run has used.
func newStream(prefix string) string {
	return "mssql-live-" + prefix + "-" + uuid.NewString()
}

// ev builds an event as Store.Append would hand it to Ops: id set,
// metadata an object.
func ev(typ, data string) eventfold.EventData {
	return eventfold.EventData{ID: uuid.Must(uuid.NewV7()).String(), Type: typ, Data: json.RawMessage(data), Metadata: json.RawMessage(`{}`)}
}

func requireWrongVersion(t *testing.T, err error, actual int64) {
	t.Helper()
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, actual, wev.Actual, "actual version in %v", err)
}

func TestLiveMigrateDownUp(t *testing.T) {
	// Not parallel: it drops the tables the other live tests use; Go runs
	// it before any parallel test resumes.
	db := liveDB(t)
	ctx := liveCtx(t)
	p, err := eventfold.NewMigrator(eventfold.SQLServer, db)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sys.schemas WHERE name = 'eventfold'`).Scan(&n))
	require.Zero(t, n, "down drops the schema")
	require.NoError(t, migrateUp(ctx, db))
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold.position`).Scan(&n))
	require.Equal(t, 1, n, "the counter row is seeded")
}

func TestLiveExpectedVersions(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)
	ops := New(db)
	s := newStream("expect")

	_, err := ops.Append(ctx, s, eventfold.StreamExists, []eventfold.EventData{ev("A", `{}`)})
	requireWrongVersion(t, err, 0)
	_, err = ops.Append(ctx, s, eventfold.Exact(1), []eventfold.EventData{ev("A", `{}`)})
	requireWrongVersion(t, err, 0)

	got, err := ops.Append(ctx, s, eventfold.NoStream, []eventfold.EventData{ev("A", `{"i":1}`), ev("B", `{"i":2}`)})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []int64{1, 2}, []int64{got[0].StreamVersion, got[1].StreamVersion})
	require.Equal(t, got[0].GlobalPosition+1, got[1].GlobalPosition, "one append takes consecutive positions")

	_, err = ops.Append(ctx, s, eventfold.NoStream, []eventfold.EventData{ev("A", `{}`)})
	requireWrongVersion(t, err, 2)
	_, err = ops.Append(ctx, s, eventfold.Exact(0), []eventfold.EventData{ev("A", `{}`)})
	requireWrongVersion(t, err, 2)

	for i, expected := range []eventfold.ExpectedVersion{eventfold.Exact(2), eventfold.Any, eventfold.StreamExists} {
		got, err := ops.Append(ctx, s, expected, []eventfold.EventData{ev("C", `{}`)})
		require.NoError(t, err, "expected %s", expected)
		require.Equal(t, int64(3+i), got[0].StreamVersion)
	}
	_, err = ops.Append(ctx, s, eventfold.Exact(4), []eventfold.EventData{ev("A", `{}`)})
	requireWrongVersion(t, err, 5)

	v, err := ops.StreamVersion(ctx, s)
	require.NoError(t, err)
	require.Equal(t, int64(5), v)

	// Exact(0) is NoStream; Any creates a stream too.
	_, err = ops.Append(ctx, newStream("exact0"), eventfold.Exact(0), []eventfold.EventData{ev("A", `{}`)})
	require.NoError(t, err)
	_, err = ops.Append(ctx, newStream("any"), eventfold.Any, []eventfold.EventData{ev("A", `{}`)})
	require.NoError(t, err)
}

func TestLiveReadBack(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)
	ops := New(db)
	s := newStream("read")

	in := []eventfold.EventData{
		ev("Object", `{"owner":"Ada <ada@example.com>","amount":1.50,"tags":["x","y"]}`),
		ev("String", `"a/b \"quoted\" é 😀"`),
		ev("Null", `null`),
		ev("Number", `42`),
		ev("Array", `[1,{"a":true}]`),
	}
	in[0].Metadata = json.RawMessage(`{"correlation_id":"c-1"}`)
	appended, err := ops.Append(ctx, s, eventfold.NoStream, in)
	require.NoError(t, err)
	require.Len(t, appended, len(in))

	read, err := ops.ReadStream(ctx, s, 1, 100, false)
	require.NoError(t, err)
	require.Len(t, read, len(in))
	for i, e := range read {
		a := appended[i]
		require.Equal(t, a.GlobalPosition, e.GlobalPosition)
		require.Equal(t, s, e.StreamID)
		require.Equal(t, int64(i+1), e.StreamVersion)
		require.Equal(t, in[i].ID, e.ID, "ids come back lower-case")
		require.Equal(t, in[i].Type, e.Type)
		require.JSONEq(t, string(in[i].Data), string(e.Data), "event %d data", i)
		require.JSONEq(t, string(in[i].Metadata), string(e.Metadata), "event %d metadata", i)
		require.True(t, a.RecordedAt.Equal(e.RecordedAt), "recorded_at %v vs %v", a.RecordedAt, e.RecordedAt)
		require.Equal(t, time.UTC, e.RecordedAt.Location())
		if i > 0 {
			require.Greater(t, e.GlobalPosition, read[i-1].GlobalPosition)
		}
	}

	page, err := ops.ReadStream(ctx, s, 2, 2, false)
	require.NoError(t, err)
	require.Equal(t, []int64{2, 3}, versions(page))
	page, err = ops.ReadStream(ctx, s, 0, 2, true)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 4}, versions(page), "backward from 0 starts at the last event")
	page, err = ops.ReadStream(ctx, s, 2, 10, true)
	require.NoError(t, err)
	require.Equal(t, []int64{2, 1}, versions(page))
	page, err = ops.ReadStream(ctx, s, 6, 10, false)
	require.NoError(t, err)
	require.Empty(t, page)

	all, err := ops.ReadAll(ctx, appended[0].GlobalPosition, 10000)
	require.NoError(t, err)
	var mine []eventfold.Event
	for i, e := range all {
		require.GreaterOrEqual(t, e.GlobalPosition, appended[0].GlobalPosition)
		if i > 0 {
			require.Greater(t, e.GlobalPosition, all[i-1].GlobalPosition, "ReadAll is in position order")
		}
		if e.StreamID == s {
			mine = append(mine, e)
		}
	}
	require.Equal(t, []int64{1, 2, 3, 4, 5}, versions(mine))
	one, err := ops.ReadAll(ctx, appended[2].GlobalPosition, 1)
	require.NoError(t, err)
	require.Len(t, one, 1)
	require.Equal(t, appended[2].GlobalPosition, one[0].GlobalPosition)

	head, err := ops.Head(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, head, appended[len(appended)-1].GlobalPosition)

	// Stream ids are exact: another case is another stream, and a
	// trailing space is refused rather than silently matched.
	v, err := ops.StreamVersion(ctx, strings.ToUpper(s))
	require.NoError(t, err)
	require.Zero(t, v)
	v, err = ops.StreamVersion(ctx, s+" ")
	require.NoError(t, err)
	require.Zero(t, v)
	page, err = ops.ReadStream(ctx, s+" ", 1, 10, false)
	require.NoError(t, err)
	require.Empty(t, page)
	_, err = ops.Append(ctx, s+" ", eventfold.Any, []eventfold.EventData{ev("A", `{}`)})
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
}

func versions(evs []eventfold.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.StreamVersion
	}
	return out
}

func TestLiveDuplicateEventID(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)
	ops := New(db)
	first := ev("A", `{}`)
	_, err := ops.Append(ctx, newStream("dup1"), eventfold.Any, []eventfold.EventData{first})
	require.NoError(t, err)

	s2 := newStream("dup2")
	_, err = ops.Append(ctx, s2, eventfold.Any, []eventfold.EventData{ev("B", `{}`), first})
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
	v, err := ops.StreamVersion(ctx, s2)
	require.NoError(t, err)
	require.Zero(t, v, "the failed append wrote nothing")
}

func TestLiveAppendInCallerTransaction(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)
	s := newStream("tx")

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	ops := New(tx)
	_, err = ops.Append(ctx, s, eventfold.NoStream, []eventfold.EventData{ev("A", `{}`)})
	require.NoError(t, err)

	// A refused append leaves the transaction usable.
	_, err = ops.Append(ctx, s, eventfold.NoStream, []eventfold.EventData{ev("A", `{}`)})
	requireWrongVersion(t, err, 1)
	_, err = ops.Append(ctx, s, eventfold.Exact(1), []eventfold.EventData{ev("B", `{}`)})
	require.NoError(t, err, "the transaction survives a wrong expected version")

	// Savepoints work around an append.
	require.NoError(t, ops.Exec(ctx, `SAVE TRANSACTION eventfold_test_sp`))
	_, err = ops.Append(ctx, s, eventfold.Exact(2), []eventfold.EventData{ev("C", `{}`)})
	require.NoError(t, err)
	require.NoError(t, ops.Exec(ctx, `ROLLBACK TRANSACTION eventfold_test_sp`))

	// Not visible outside before commit (reading it from outside would
	// block under locking READ COMMITTED, so ask inside instead).
	v, err := ops.StreamVersion(ctx, s)
	require.NoError(t, err)
	require.Equal(t, int64(2), v)
	require.NoError(t, tx.Commit())

	read, err := New(db).ReadStream(ctx, s, 1, 10, false)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, versions(read))
	require.Equal(t, []string{"A", "B"}, []string{read[0].Type, read[1].Type})

	// A rolled-back append leaves nothing.
	s2 := newStream("rollback")
	tx2, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = New(tx2).Append(ctx, s2, eventfold.NoStream, []eventfold.EventData{ev("A", `{}`)})
	require.NoError(t, err)
	require.NoError(t, tx2.Rollback())
	v, err = New(db).StreamVersion(ctx, s2)
	require.NoError(t, err)
	require.Zero(t, v)
}

func TestLiveConcurrentAppendsOneWinner(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)

	existing := newStream("race")
	_, err := New(db).Append(ctx, existing, eventfold.NoStream, []eventfold.EventData{ev("A", `{}`)})
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		stream   string
		expected eventfold.ExpectedVersion
		actual   int64 // what the losers see
	}{
		"exact version of an existing stream": {existing, eventfold.Exact(1), 2},
		"creators of a new stream":            {newStream("race-new"), eventfold.NoStream, 1},
	} {
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = appendInTx(ctx, db, tc.stream, tc.expected, ev("Race", `{}`))
			}()
		}
		close(start)
		wg.Wait()

		winners := 0
		for _, err := range errs {
			if err == nil {
				winners++
				continue
			}
			requireWrongVersion(t, err, tc.actual)
		}
		require.Equal(t, 1, winners, name)
	}
}

func appendInTx(ctx context.Context, db *sql.DB, stream string, expected eventfold.ExpectedVersion, e eventfold.EventData) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := New(tx).Append(ctx, stream, expected, []eventfold.EventData{e}); err != nil {
		return err
	}
	return tx.Commit()
}

// TestLivePositionsCommitInOrder shows the gap-free guarantee: while one
// transaction holds positions, a second appender to another stream waits
// for it, so it can never commit a higher position first.
func TestLivePositionsCommitInOrder(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)

	// Both streams exist beforehand, so neither append takes a key-range
	// lock: the only thing the second can wait for is the position row.
	sa, sb := newStream("orderA"), newStream("orderB")
	for _, s := range []string{sa, sb} {
		_, err := New(db).Append(ctx, s, eventfold.NoStream, []eventfold.EventData{ev("Created", `{}`)})
		require.NoError(t, err)
	}

	txA, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = txA.Rollback() }()
	a, err := New(txA).Append(ctx, sa, eventfold.Exact(1), []eventfold.EventData{ev("A", `{}`)})
	require.NoError(t, err)

	done := make(chan []eventfold.Event, 1)
	errc := make(chan error, 1)
	go func() {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			errc <- err
			return
		}
		defer func() { _ = tx.Rollback() }()
		b, err := New(tx).Append(ctx, sb, eventfold.Exact(1), []eventfold.EventData{ev("B", `{}`)})
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			errc <- err
			return
		}
		done <- b
	}()

	select {
	case <-done:
		t.Fatal("a second append took positions while the first transaction was still open")
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(500 * time.Millisecond):
	}
	require.NoError(t, txA.Commit())
	select {
	case b := <-done:
		require.Greater(t, b[0].GlobalPosition, a[0].GlobalPosition)
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("the second append never finished")
	}
}

// TestLiveProcedureFromTSQL calls the procedure the way a DBA would: plain
// T-SQL, no surrounding transaction, events written by hand.
func TestLiveProcedureFromTSQL(t *testing.T) {
	t.Parallel()
	db := liveDB(t)
	ctx := liveCtx(t)
	s := newStream("tsql")

	rows, err := db.QueryContext(ctx, `
DECLARE @events NVARCHAR(MAX) = N'[
  {"id": "0190F5A2-6C1E-7B3A-9D2E-`+strings.ToUpper(uuid.NewString()[24:])+`", "type": "Opened",
   "data": {"owner": "Ada"}, "metadata": {"actor": "dba"}},
  {"type": "Noted", "data": "see ticket 4/711"},
  {"type": "Cleared", "data": null}
]';
EXEC eventfold.append_events @stream_id = @p1, @expected_version = -2, @events = @events;`, s)
	require.NoError(t, err)
	var got []int64
	for rows.Next() {
		var pos, version int64
		var at time.Time
		require.NoError(t, rows.Scan(&pos, &version, &at))
		got = append(got, version)
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	require.Equal(t, []int64{1, 2, 3}, got)

	read, err := New(db).ReadStream(ctx, s, 1, 10, false)
	require.NoError(t, err)
	require.Len(t, read, 3)
	require.JSONEq(t, `{"owner":"Ada"}`, string(read[0].Data))
	require.JSONEq(t, `{"actor":"dba"}`, string(read[0].Metadata))
	require.JSONEq(t, `"see ticket 4/711"`, string(read[1].Data))
	require.JSONEq(t, `{}`, string(read[1].Metadata), "absent metadata is stored as {}")
	require.JSONEq(t, `null`, string(read[2].Data))
	require.Equal(t, strings.ToLower(read[0].ID), read[0].ID)
	_, err = uuid.Parse(read[1].ID)
	require.NoError(t, err, "an absent id is generated")

	for name, call := range map[string]string{
		"events not an array":  `EXEC eventfold.append_events @stream_id = N'x', @expected_version = -1, @events = N'{"type":"A","data":{}}'`,
		"empty array":          `EXEC eventfold.append_events @stream_id = N'x', @expected_version = -1, @events = N'[]'`,
		"bad expected version": `EXEC eventfold.append_events @stream_id = N'x', @expected_version = -4, @events = N'[{"type":"A","data":{}}]'`,
		"metadata not object":  `EXEC eventfold.append_events @stream_id = N'x', @expected_version = -1, @events = N'[{"type":"A","data":{},"metadata":[1]}]'`,
		"bad id":               `EXEC eventfold.append_events @stream_id = N'x', @expected_version = -1, @events = N'[{"id":"nope","type":"A","data":{}}]'`,
		"missing data":         `EXEC eventfold.append_events @stream_id = N'x', @expected_version = -1, @events = N'[{"type":"A"}]'`,
		"trailing space":       `EXEC eventfold.append_events @stream_id = N'x ', @expected_version = -1, @events = N'[{"type":"A","data":{}}]'`,
	} {
		_, err := db.ExecContext(ctx, call)
		var me mssql.Error
		require.True(t, errors.As(err, &me), "%s: %v", name, err)
		require.EqualValues(t, errInvalidInput, me.Number, "%s: %v", name, err)
	}
}
