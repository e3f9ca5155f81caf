package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// The append path. SQLite has one writer at a time (every write
// transaction begins IMMEDIATE), so a stream's current version is simply
// the highest stream_version among its events, read in the statement that
// inserts above it: no eventfold_streams row is written per append
// (migration 00015 keeps that table for streams whose events were all
// archived; its trigger raises the row before an event is deleted). A
// statement is all or nothing in SQLite, so an append of up to
// maxRowsPerInsert events is ONE statement and needs no savepoint: when it
// fails (a duplicate event id) nothing of it is left in the caller's
// transaction. Measured (internal/dialect/sqlite tests, cpu per command
// with the reducer's upsert): the previous savepoint + streams upsert +
// one INSERT per event + release cost about 185 µs, this about 120 µs.

// maxRowsPerInsert bounds the rows one INSERT carries (SQLite allows 32,766
// parameters per statement; an append row takes four or six).
const maxRowsPerInsert = 1000

// currentVersionExpr is a stream's current version given its id as
// parameter ?1 (see StreamVersion in queries/sqlite/events.sql).
const currentVersionExpr = `coalesce((SELECT max(stream_version) FROM eventfold_events WHERE stream_id = ?1),
(SELECT version FROM eventfold_streams WHERE stream_id = ?1), 0)`

// nextPositionExpr is the position the next event gets: above every
// event in the table and above the floor, the table's row in
// sqlite_sequence. Since migration 00016 the table has no AUTOINCREMENT
// (it cost a page written per commit); the floor is kept by a trigger when
// the newest events are deleted, so that no position is handed out twice
// (without a position SQLite would take max(global_position) + 1). Before
// 00016 the row is AUTOINCREMENT's counter, and this is its next value.
const nextPositionExpr = `max(coalesce((SELECT max(global_position) FROM eventfold_events), 0),
coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'eventfold_events'), 0)) + 1`

// appendSQLCache holds the one-statement append per event count.
var appendSQLCache sync.Map // int -> string

// Parameters of the one-statement appends: ?1 stream id, ?2 expected
// version, ?3 recorded_at, then per event its id, type, data and metadata.
// Each returns the inserted rows' positions and versions, and inserts
// nothing when the stream's version does not meet the expectation.
const (
	// appendOneAnySQL appends one event without a check: the cheapest
	// form (about 15 µs of CPU less than appendSQL(1) on the benchmark
	// machine). ?2 is unused. A scalar subquery in VALUES is safe for one
	// row only: with several, each row's would see the rows before it.
	appendOneAnySQL = `INSERT INTO eventfold_events (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
VALUES (` + nextPositionExpr + `, ?1, ` + currentVersionExpr + ` + 1, ?4, ?5, ?6, ?7, ?3)
RETURNING global_position, stream_version`
	// appendOneSQL appends one event after checking the expectation.
	appendOneSQL = `INSERT INTO eventfold_events (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
SELECT c.p, ?1, c.v + 1, ?4, ?5, ?6, ?7, ?3
FROM (SELECT ` + currentVersionExpr + ` AS v, ` + nextPositionExpr + ` AS p) AS c
WHERE ` + checkExpr + `
RETURNING global_position, stream_version`
	// checkExpr is ExpectedVersion.Satisfied in SQL, for version c.v.
	checkExpr = `?2 = -1 OR (?2 = -2 AND c.v = 0) OR (?2 = -3 AND c.v > 0) OR c.v = ?2`
)

// appendSQL is the one-statement append of n events to one stream (see
// the parameters above).
func appendSQL(n int, expected eventfold.ExpectedVersion) string {
	switch {
	case n == 1 && expected == eventfold.Any:
		return appendOneAnySQL
	case n == 1:
		return appendOneSQL
	}
	if q, ok := appendSQLCache.Load(n); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO eventfold_events (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
SELECT c.p + e.column1 - 1, ?1, c.v + e.column1, e.column2, e.column3, e.column4, e.column5, ?3
FROM (SELECT `)
	b.WriteString(currentVersionExpr)
	b.WriteString(` AS v, `)
	b.WriteString(nextPositionExpr)
	b.WriteString(` AS p) AS c, (VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		p := 4 + 4*i
		fmt.Fprintf(&b, "(%d, ?%d, ?%d, ?%d, ?%d)", i+1, p, p+1, p+2, p+3)
	}
	b.WriteString(`) AS e
WHERE ` + checkExpr + `
ORDER BY e.column1
RETURNING global_position, stream_version`)
	q, _ := appendSQLCache.LoadOrStore(n, b.String())
	return q.(string)
}

// insertSQLCache holds the multi-row insert with explicit versions per row
// count.
var insertSQLCache sync.Map // int -> string

// insertSQL inserts n rows with explicit versions: ?1 recorded_at, then per
// row stream id, version, event id, type, data and metadata. The rows get
// consecutive positions in their order: the first the next position, each
// later one max(global_position) + 1, the one after its predecessor's (one
// writer).
func insertSQL(n int) string {
	if q, ok := insertSQLCache.Load(n); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO eventfold_events (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at) VALUES `)
	for i := range n {
		pos := "NULL"
		if i > 0 {
			b.WriteString(", ")
		} else {
			pos = nextPositionExpr
		}
		p := 2 + 6*i
		fmt.Fprintf(&b, "(%s, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?1)", pos, p, p+1, p+2, p+3, p+4, p+5)
	}
	q, _ := insertSQLCache.LoadOrStore(n, b.String())
	return q.(string)
}

// versionsSQL reads the current version of each stream in a JSON array.
var versionsSQL = `SELECT j.value, ` + strings.ReplaceAll(currentVersionExpr, "?1", "j.value") + ` FROM json_each(?1) AS j`

// Append implements eventfold.Ops. On a *sql.DB it runs in a transaction
// of its own.
func (o *Ops) Append(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	if pool, ok := o.db.(*sql.DB); ok {
		var out []eventfold.Event
		err := o.inOwnTx(ctx, pool, streamID, expected, func(tx *Ops) (err error) {
			out, err = tx.appendOne(ctx, streamID, expected, events)
			return err
		})
		return out, err
	}
	if len(events) > maxRowsPerInsert {
		// More than one statement: a savepoint makes it all or nothing
		// in the caller's transaction, as one statement is.
		var out []eventfold.Event
		err := o.inSavepoint(ctx, streamID, expected, func() (err error) {
			out, err = o.appendOne(ctx, streamID, expected, events)
			return err
		})
		return out, err
	}
	return o.appendOne(ctx, streamID, expected, events)
}

// AppendMany implements contract.Log: one statement reads the versions of
// the batch's streams, the checks run here, and one INSERT per
// maxRowsPerInsert rows writes every event. A refused expectation is
// found before anything is written; a duplicate event id fails the
// INSERT, which leaves earlier INSERTs of the batch in place (the caller
// rolls back, as the contract says).
func (o *Ops) AppendMany(ctx context.Context, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	if pool, ok := o.db.(*sql.DB); ok {
		var out [][]eventfold.Event
		err := o.inOwnTx(ctx, pool, "", eventfold.Any, func(tx *Ops) (err error) {
			out, err = tx.appendMany(ctx, appends)
			return err
		})
		return out, err
	}
	return o.appendMany(ctx, appends)
}

// inOwnTx runs fn in a write transaction of its own on pool.
func (o *Ops) inOwnTx(ctx context.Context, pool *sql.DB, streamID string, expected eventfold.ExpectedVersion, fn func(tx *Ops) error) error {
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin append transaction: %w", interpretError(err, streamID, expected))
	}
	if err := fn(New(tx)); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit append: %w", interpretError(err, streamID, expected))
	}
	return nil
}

// inSavepoint runs fn inside a savepoint of the caller's transaction and
// rolls back to it when fn fails: SQLite undoes only a failing statement,
// not the statements before it.
func (o *Ops) inSavepoint(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, fn func() error) error {
	if _, err := o.db.ExecContext(ctx, `SAVEPOINT eventfold_append`); err != nil {
		return fmt.Errorf("append: savepoint: %w", interpretError(err, streamID, expected))
	}
	if err := fn(); err != nil {
		// Undo even when ctx ended: the caller's transaction lives on.
		uctx := context.WithoutCancel(ctx)
		if _, rerr := o.db.ExecContext(uctx, `ROLLBACK TO eventfold_append`); rerr != nil {
			return errors.Join(err, fmt.Errorf("append: roll back to its savepoint: %w", rerr))
		}
		_, _ = o.db.ExecContext(uctx, `RELEASE eventfold_append`)
		return err
	}
	if _, err := o.db.ExecContext(ctx, `RELEASE eventfold_append`); err != nil {
		return fmt.Errorf("append: release savepoint: %w", interpretError(err, streamID, expected))
	}
	return nil
}

// now is the recorded_at of what is appended now, as stored (milliseconds).
func now() (time.Time, string) {
	t := time.Now().UTC().Truncate(time.Millisecond)
	return t, t.Format(TimeLayout)
}

// appendOne appends to one stream inside the write transaction o.db is:
// one statement up to maxRowsPerInsert events, appendMany's statements
// beyond.
func (o *Ops) appendOne(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	n := len(events)
	if n > maxRowsPerInsert {
		out, err := o.appendMany(ctx, []contract.StreamAppend{{StreamID: streamID, Expected: expected, Events: events}})
		if err != nil {
			var me *contract.AppendManyError
			if errors.As(err, &me) {
				return nil, me.Err
			}
			return nil, err
		}
		return out[0], nil
	}
	at, atText := now()
	args := make([]any, 3, 3+4*n)
	args[0], args[1], args[2] = streamID, int64(expected), atText
	for _, e := range events {
		args = append(args, e.ID, e.Type, string(e.Data), string(e.Metadata))
	}
	rows, err := o.db.QueryContext(ctx, appendSQL(n, expected), args...)
	if err != nil {
		return nil, interpretError(err, streamID, expected)
	}
	out := make([]eventfold.Event, n)
	got := 0
	var base int64
	for rows.Next() {
		var pos, version int64
		if err := rows.Scan(&pos, &version); err != nil {
			_ = rows.Close()
			return nil, interpretError(err, streamID, expected)
		}
		if got == 0 {
			base = version - 1 // rows come back in order; checked below
		}
		i := version - base - 1
		if i < 0 || i >= int64(n) || out[i].StreamVersion != 0 {
			_ = rows.Close()
			return nil, fmt.Errorf("sqlite: append to %q returned version %d out of order", streamID, version)
		}
		e := events[i]
		out[i] = eventfold.Event{
			GlobalPosition: pos, StreamID: streamID, StreamVersion: version,
			ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata, RecordedAt: at,
		}
		got++
	}
	if err := rows.Err(); err != nil {
		_ = rows.Close()
		return nil, interpretError(err, streamID, expected)
	}
	if err := rows.Close(); err != nil {
		return nil, interpretError(err, streamID, expected)
	}
	if got == 0 {
		// The expectation failed: nothing was inserted.
		v, err := o.StreamVersion(ctx, streamID)
		if err != nil {
			return nil, err
		}
		return nil, &eventfold.WrongExpectedVersionError{StreamID: streamID, Expected: expected, Actual: v}
	}
	if got != n {
		return nil, fmt.Errorf("sqlite: append to %q inserted %d of %d events", streamID, got, n)
	}
	return out, nil
}

// appendMany appends the batch inside the write transaction o.db is.
func (o *Ops) appendMany(ctx context.Context, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	if len(appends) == 0 {
		return [][]eventfold.Event{}, nil
	}
	if len(appends) == 1 && len(appends[0].Events) <= maxRowsPerInsert {
		a := appends[0]
		evs, err := o.appendOne(ctx, a.StreamID, a.Expected, a.Events)
		if err != nil {
			return nil, &contract.AppendManyError{Index: 0, Err: err}
		}
		return [][]eventfold.Event{evs}, nil
	}
	// The streams' current versions, in one statement.
	versions := make(map[string]int64, len(appends))
	ids := make([]string, 0, len(appends))
	for _, a := range appends {
		if _, seen := versions[a.StreamID]; !seen {
			versions[a.StreamID] = 0
			ids = append(ids, a.StreamID)
		}
	}
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("sqlite: append: encode stream ids: %w", err)
	}
	if err := o.readVersions(ctx, string(idsJSON), versions); err != nil {
		return nil, &contract.AppendManyError{Index: 0, Err: err}
	}
	// The checks, in order, against the versions the earlier elements
	// leave; nothing is written when one fails.
	at, atText := now()
	total := 0
	seenIDs := make(map[string]int, len(appends))
	out := make([][]eventfold.Event, len(appends))
	for i, a := range appends {
		v := versions[a.StreamID]
		if !a.Expected.Satisfied(v) {
			return nil, &contract.AppendManyError{Index: i, Err: &eventfold.WrongExpectedVersionError{StreamID: a.StreamID, Expected: a.Expected, Actual: v}}
		}
		evs := make([]eventfold.Event, len(a.Events))
		for j, e := range a.Events {
			if k, dup := seenIDs[e.ID]; dup && k != i {
				// Append would find the earlier element's event.
				return nil, &contract.AppendManyError{Index: i, Err: dialect.DuplicateEventID(
					fmt.Errorf("event id %s is also in element %d of the batch", e.ID, k))}
			}
			seenIDs[e.ID] = i
			v++
			evs[j] = eventfold.Event{
				StreamID: a.StreamID, StreamVersion: v,
				ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata, RecordedAt: at,
			}
		}
		versions[a.StreamID] = v
		out[i] = evs
		total += len(a.Events)
	}
	// The rows, in order, maxRowsPerInsert per statement.
	refs := make([]rowRef, 0, total)
	for i, evs := range out {
		for j := range evs {
			refs = append(refs, rowRef{i, j})
		}
	}
	for start := 0; start < len(refs); start += maxRowsPerInsert {
		chunk := refs[start:min(start+maxRowsPerInsert, len(refs))]
		args := make([]any, 1, 1+6*len(chunk))
		args[0] = atText
		for _, r := range chunk {
			e := &out[r.i][r.j]
			args = append(args, e.StreamID, e.StreamVersion, e.ID, e.Type, string(e.Data), string(e.Metadata))
		}
		res, err := o.db.ExecContext(ctx, insertSQL(len(chunk)), args...)
		if err != nil {
			return nil, o.batchInsertError(ctx, appends, out, chunk, err)
		}
		last, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("sqlite: append: last position: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(chunk)) {
			return nil, fmt.Errorf("sqlite: append: inserted %d of %d events (%v)", n, len(chunk), err)
		}
		first := last - int64(len(chunk)) + 1
		for k, r := range chunk {
			out[r.i][r.j].GlobalPosition = first + int64(k)
		}
	}
	return out, nil
}

// readVersions fills versions with the current version of each stream in
// idsJSON (a JSON array of stream ids).
func (o *Ops) readVersions(ctx context.Context, idsJSON string, versions map[string]int64) error {
	rows, err := o.db.QueryContext(ctx, versionsSQL, idsJSON)
	if err != nil {
		return interpretError(err, "", eventfold.Any)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			return interpretError(err, "", eventfold.Any)
		}
		versions[id] = v
	}
	if err := rows.Err(); err != nil {
		return interpretError(err, "", eventfold.Any)
	}
	return rows.Close()
}

// rowRef is event j of element i of a batch.
type rowRef struct{ i, j int }

// batchInsertError names the element an INSERT of the batch failed on. A
// duplicate event id is the usual cause: the first element of the failed
// chunk one of whose ids is already stored (the statement was undone, so
// what is stored is what was there before it). Other errors are charged
// to the chunk's first element.
func (o *Ops) batchInsertError(ctx context.Context, appends []contract.StreamAppend, out [][]eventfold.Event, chunk []rowRef, err error) error {
	a := appends[chunk[0].i]
	ierr := interpretError(err, a.StreamID, a.Expected)
	if !errors.Is(ierr, eventfold.ErrDuplicateEventID) {
		return &contract.AppendManyError{Index: chunk[0].i, Err: ierr}
	}
	for _, r := range chunk {
		var n int64
		if qerr := o.db.QueryRowContext(ctx, `SELECT count(*) FROM eventfold_events WHERE event_id = ?`, out[r.i][r.j].ID).Scan(&n); qerr != nil {
			break
		}
		if n > 0 {
			a := appends[r.i]
			return &contract.AppendManyError{Index: r.i, Err: interpretError(err, a.StreamID, a.Expected)}
		}
	}
	return &contract.AppendManyError{Index: chunk[0].i, Err: ierr}
}

// AppendStatement returns the statement Append runs for n events with
// expectation expected (?1 stream id, ?2 expected version, ?3 recorded_at,
// then per event its id, type, data and metadata), for the hand-written
// baseline of package bench (raw-same-sql).
func AppendStatement(n int, expected eventfold.ExpectedVersion) string {
	return appendSQL(n, expected)
}
