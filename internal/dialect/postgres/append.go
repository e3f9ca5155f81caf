package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// positionProbes are the two select-list columns both append statements
// compute from b (base: this transaction's first position, off: the
// position offset), written once so that they cannot drift apart: next,
// the transaction's next free position (one past its highest event so far,
// base for its first), and foreign_position, the lowest event at a position
// no transaction of this server can have handed out yet (at or above both
// the slots of transactions not started at this snapshot and the end of
// this one's slot), which exists only when the log runs ahead of the
// server's positions, a moved database (EF002, see migration 00006).
const positionProbes = `           coalesce((SELECT max(e.global_position) + 1
                       FROM eventfold.events e
                      WHERE e.global_position >= b.base
                        AND e.global_position < b.base + 1048576), b.base) AS next,
           (SELECT min(e.global_position)
              FROM eventfold.events e
             WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                 b.base + 1048576)) AS foreign_position
`

// appendStatement appends to one stream: $1 stream id, $2 expected
// version, $3-$6 event ids, types, data and metadata. It is the body of
// eventfold.append_events_returning_data since migration 00015 (with the
// function's arguments for $1-$6; TestAppendStatementMatchesFunction keeps
// the two in step), sent as one prepared statement: no plpgsql on the hot
// path, no stream row. See sql/postgres/00015_append_statement.sql for
// why each check holds without the row lock.
const appendStatement = `WITH lk AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(1162233857, hashtext($1::text)) AS locked
), b AS MATERIALIZED (
    SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base,
           o.last_value AS off,
           l.stream_version AS last_version,
           l.global_position AS last_position,
           (SELECT s.version FROM eventfold.streams s WHERE s.stream_id = $1::text) AS kept_version
      FROM lk, eventfold.position_offset o
      LEFT JOIN LATERAL (
          SELECT e.stream_version, e.global_position
            FROM eventfold.events e
           WHERE e.stream_id = $1::text
           ORDER BY e.stream_version DESC
           LIMIT 1) l ON true
), c AS MATERIALIZED (
    SELECT b.base, b.last_position,
           greatest(b.last_version, b.kept_version, 0) AS cur,
` + positionProbes + `      FROM b
), r AS MATERIALIZED (
    SELECT c.cur, c.next, c.base, c.last_position, c.foreign_position,
           CASE
           WHEN NOT ($2::bigint = -1
                     OR ($2::bigint = -2 AND c.cur = 0)
                     OR ($2::bigint = -3 AND c.cur > 0)
                     OR ($2::bigint >= 0 AND c.cur = $2::bigint)) THEN 'EF001'
           WHEN c.foreign_position IS NOT NULL THEN 'EF002'
           WHEN c.last_position >= c.next THEN 'EF003'
           WHEN c.next - c.base + cardinality($3::uuid[]) > 1048576 THEN '54000'
           END AS refusal
      FROM c
), ins AS (
    INSERT INTO eventfold.events AS e
           (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
    SELECT r.next + u.ord - 1, $1::text, r.cur + u.ord, u.event_id, u.event_type, u.data, u.metadata
      FROM r, unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
              WITH ORDINALITY AS u(event_id, event_type, data, metadata, ord)
     WHERE r.refusal IS NULL
    ON CONFLICT ON CONSTRAINT events_stream_id_stream_version_key DO NOTHING
    RETURNING e.global_position, e.stream_version, e.recorded_at, e.data, e.metadata
)
SELECT i.global_position, i.stream_version, i.recorded_at, i.data, i.metadata,
       NULL::text AS refusal, NULL::bigint AS x, NULL::bigint AS y
  FROM ins i
UNION ALL
-- A refusal: nothing was inserted. x, y: EF001 the actual version; EF002
-- the foreign position and this transaction's first; EF003 the stream's
-- last position and this transaction's next; 54000 the events the
-- transaction has and the events added.
SELECT NULL, NULL, NULL, NULL, NULL, r.refusal,
       CASE r.refusal WHEN 'EF001' THEN r.cur WHEN 'EF002' THEN r.foreign_position
                      WHEN 'EF003' THEN r.last_position ELSE r.next - r.base END,
       CASE r.refusal WHEN 'EF001' THEN r.cur WHEN 'EF002' THEN r.base
                      WHEN 'EF003' THEN r.next ELSE cardinality($3::uuid[]) END
  FROM r
 WHERE r.refusal IS NOT NULL`

// appendManyStatement appends to several streams in one statement: $1
// stream ids, $2 expected versions, $3 events per element, $4-$7 the
// elements' events one after the other. Each element gets the checks of
// appendStatement, in element order, against the stream's version plus
// what earlier elements of the batch append to the same stream; a refusal
// names the element (0-based) in the error's COLUMN field.
const appendManyStatement = `WITH a AS MATERIALIZED (
    SELECT a.k, a.stream_id, a.expected, a.n,
           coalesce(sum(a.n) OVER (ORDER BY a.k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first,
           coalesce(sum(a.n) OVER (PARTITION BY a.stream_id ORDER BY a.k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS earlier
      FROM unnest($1::text[], $2::bigint[], $3::int[]) WITH ORDINALITY AS a(stream_id, expected, n, k)
), lk AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock(1162233857, hashtext(x.stream_id))) AS locked
      FROM (SELECT DISTINCT a.stream_id FROM a ORDER BY a.stream_id) x
), b AS MATERIALIZED (
    SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base,
           o.last_value AS off
      FROM lk, eventfold.position_offset o
), c AS MATERIALIZED (
    SELECT b.base,
` + positionProbes + `      FROM b
), s AS MATERIALIZED (
    SELECT a.k, a.stream_id, a.expected, a.n, a.first,
           greatest(l.stream_version,
                    (SELECT st.version FROM eventfold.streams st WHERE st.stream_id = a.stream_id),
                    0) + a.earlier AS cur,
           l.global_position AS last_position
      FROM a
      LEFT JOIN LATERAL (
          SELECT e.stream_version, e.global_position
            FROM eventfold.events e
           WHERE e.stream_id = a.stream_id
           ORDER BY e.stream_version DESC
           LIMIT 1) l ON true
     ORDER BY a.k
), r AS MATERIALIZED (
    SELECT s.k, s.stream_id, s.n, s.first, s.cur, s.last_position, c.next, c.base, c.foreign_position,
           CASE
           WHEN NOT (s.expected = -1
                     OR (s.expected = -2 AND s.cur = 0)
                     OR (s.expected = -3 AND s.cur > 0)
                     OR (s.expected >= 0 AND s.cur = s.expected)) THEN 'EF001'
           WHEN c.foreign_position IS NOT NULL THEN 'EF002'
           WHEN s.last_position >= c.next THEN 'EF003'
           WHEN c.next - c.base + s.first + s.n > 1048576 THEN '54000'
           END AS refusal
      FROM s, c
), ins AS (
    INSERT INTO eventfold.events AS e
           (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
    SELECT c.next + u.g - 1, s.stream_id, s.cur + u.g - s.first, u.event_id, u.event_type, u.data, u.metadata
      FROM c, unnest($4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])
                 WITH ORDINALITY AS u(event_id, event_type, data, metadata, g)
      JOIN s ON u.g > s.first AND u.g <= s.first + s.n
     WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.refusal IS NOT NULL)
    ON CONFLICT ON CONSTRAINT events_stream_id_stream_version_key DO NOTHING
    RETURNING e.global_position, e.stream_id, e.stream_version, e.recorded_at, e.data, e.metadata
)
SELECT i.global_position, i.stream_id, i.stream_version, i.recorded_at, i.data, i.metadata,
       NULL::bigint AS k, NULL::bigint AS cur, NULL::text AS refusal, NULL::bigint AS x, NULL::bigint AS y
  FROM ins i
UNION ALL
-- One row per element: its version before the append (cur) and, when it
-- is refused (then nothing was inserted), why; x and y as in
-- appendStatement.
SELECT NULL, NULL, NULL, NULL, NULL, NULL, r.k, r.cur, r.refusal,
       CASE r.refusal WHEN 'EF001' THEN r.cur WHEN 'EF002' THEN r.foreign_position
                      WHEN 'EF003' THEN r.last_position ELSE r.next - r.base + r.first END,
       CASE r.refusal WHEN 'EF001' THEN r.cur WHEN 'EF002' THEN r.base
                      WHEN 'EF003' THEN r.next + r.first ELSE r.n END
  FROM r`

// errNoEvents refuses an empty append before any SQL (the statements
// would append nothing and check nothing), as the DBA function does.
var errNoEvents = errors.New("eventfold.append_events: no events to append")

// eventArrays are the per-event arguments of both statements. Data and
// metadata go as strings (text[] cast to jsonb[] by the statement): pgx
// encodes a string as its bytes in every QueryExecMode, whereas [][]byte
// goes as bytea text ('\x7b...') under QueryExecModeSimpleProtocol and
// QueryExecModeExec (no server-side parameter types to go by), which jsonb
// refuses (22P02). With described statements (the default) a string is
// sent as jsonb text, as the bytes were.
type eventArrays struct {
	ids      []pgtype.UUID
	types    []string
	data     []string
	metadata []string
}

func newEventArrays(n int) eventArrays {
	return eventArrays{
		ids:      make([]pgtype.UUID, 0, n),
		types:    make([]string, 0, n),
		data:     make([]string, 0, n),
		metadata: make([]string, 0, n),
	}
}

// add appends events; inputs are validated by eventfold.Store (ids set
// and canonical, metadata a JSON object).
func (a *eventArrays) add(events []eventfold.EventData) error {
	for i, e := range events {
		id, err := uuid.Parse(e.ID)
		if err != nil {
			return fmt.Errorf("event %d id %q: %w", i, e.ID, err)
		}
		a.ids = append(a.ids, pgtype.UUID{Bytes: id, Valid: true})
		a.types = append(a.types, e.Type)
		a.data = append(a.data, string(e.Data))
		m := `{}`
		if len(e.Metadata) > 0 {
			m = string(e.Metadata)
		}
		a.metadata = append(a.metadata, m)
	}
	return nil
}

// appendedRow is one row the append statements return: an event as
// recorded, or (refusal or element set) a report.
type appendedRow struct {
	position, version int64
	streamID          string
	recordedAt        pgtype.Timestamptz
	data, metadata    []byte
	element, cur      int64 // AppendMany: 1-based element, its version before
	refusal           string
	x, y              int64
}

// runAppend runs appendStatement (many false) or appendManyStatement and
// returns the events in position order and the reports.
func (o *Ops) runAppend(ctx context.Context, many bool, n int, args ...any) (events, reports []appendedRow, err error) {
	query := appendStatement
	if many {
		query = appendManyStatement
	}
	rows, err := o.db.Query(ctx, query, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	events = make([]appendedRow, 0, n)
	for rows.Next() {
		var r appendedRow
		var pos, ver, el, cur, x, y pgtype.Int8
		var stream, refusal pgtype.Text
		if many {
			err = rows.Scan(&pos, &stream, &ver, &r.recordedAt, &r.data, &r.metadata, &el, &cur, &refusal, &x, &y)
		} else {
			err = rows.Scan(&pos, &ver, &r.recordedAt, &r.data, &r.metadata, &refusal, &x, &y)
		}
		if err != nil {
			return nil, nil, err
		}
		r.position, r.version, r.streamID = pos.Int64, ver.Int64, stream.String
		r.element, r.cur, r.refusal, r.x, r.y = el.Int64, cur.Int64, refusal.String, x.Int64, y.Int64
		if pos.Valid {
			events = append(events, r)
		} else {
			reports = append(reports, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if !sort.SliceIsSorted(events, func(i, j int) bool { return events[i].position < events[j].position }) {
		sort.Slice(events, func(i, j int) bool { return events[i].position < events[j].position })
	}
	return events, reports, nil
}

// refused turns a refusal the statement reported into the error
// eventfold.append_events raises for it (same SQLSTATE, message, DETAIL
// and HINT, as a *pgconn.PgError), mapped by interpretError.
func refused(r appendedRow, streamID string, expected eventfold.ExpectedVersion) error {
	e := &pgconn.PgError{Severity: "ERROR", Code: r.refusal}
	switch r.refusal {
	case codeWrongExpectedVersion:
		return wrongVersionError(streamID, expected, r.x)
	case codePositionsBehind:
		e.Message = fmt.Sprintf("eventfold: the log holds position %d but this cluster's transaction ids give positions from %d (database restored into a new cluster?)", r.x, r.y)
		e.Hint = "Run SELECT * FROM eventfold.check_positions(true) (or esctl doctor --repair, or Store.Migrate), then retry."
	case codeStreamOrder:
		e.Message = fmt.Sprintf("eventfold: stream \"%s\" was last written by a later transaction (its last event is at position %d, this transaction's next is %d); a retry in a new transaction will succeed", streamID, r.x, r.y)
		e.Hint = "Roll back and run the whole transaction again: a new transaction appends above it."
	default:
		e.Code = "54000"
		e.Message = fmt.Sprintf("eventfold.append_events: a transaction may append at most %d events (this one already has %d, adding %d)", slotSize, r.x, r.y)
		e.Hint = "Split the work into several transactions."
	}
	return interpretError(e, streamID, expected)
}

// wrongVersionError is EF001 as eventfold.append_events raises it.
func wrongVersionError(streamID string, expected eventfold.ExpectedVersion, actual int64) error {
	return interpretError(&pgconn.PgError{
		Severity: "ERROR", Code: codeWrongExpectedVersion,
		Message: fmt.Sprintf("eventfold: wrong expected version for stream \"%s\": expected %s, actual %d", streamID, expected, actual),
		Detail:  strconv.FormatInt(actual, 10),
	}, streamID, expected)
}

// slotSize is the number of positions per transaction (00001).
const slotSize = 1 << 20

// conflictAttempts bounds how often an append that lost its versions to a
// concurrent append runs again inside the transaction.
const conflictAttempts = 5

// undo deletes what an append statement inserted before it found its
// versions taken, so that the transaction holds nothing of the append.
func (o *Ops) undo(ctx context.Context, rows []appendedRow) error {
	if len(rows) == 0 {
		return nil
	}
	pos := make([]int64, len(rows))
	for i, r := range rows {
		pos[i] = r.position
	}
	_, err := o.db.Exec(ctx, `DELETE FROM eventfold.events WHERE global_position = ANY($1::bigint[])`, pos)
	return err
}

// lostRace handles an append whose versions a concurrent append took
// (it committed while the insert waited on the unique index): the rows
// the statement did insert are removed; an append that expected any
// version or an existing stream may run again (nil), one that expected an
// exact version or no stream is refused with the stream's actual version.
func (o *Ops) lostRace(ctx context.Context, inserted []appendedRow, streamID string, expected eventfold.ExpectedVersion) error {
	if err := o.undo(ctx, inserted); err != nil {
		return interpretError(err, streamID, expected)
	}
	if expected == eventfold.Any || expected == eventfold.StreamExists {
		return nil
	}
	v, err := o.StreamVersion(ctx, streamID)
	if err != nil {
		return err
	}
	return wrongVersionError(streamID, expected, v)
}

// recorded turns returned rows into events, in order.
func recorded(streamID string, rows []appendedRow, a *eventArrays, first int, events []eventfold.EventData) []eventfold.Event {
	out := make([]eventfold.Event, len(events))
	for i := range out {
		r := rows[first+i]
		out[i] = eventfold.Event{
			GlobalPosition: r.position,
			StreamID:       streamID,
			StreamVersion:  r.version,
			ID:             uuid.UUID(a.ids[first+i].Bytes).String(),
			Type:           events[i].Type,
			// As stored, not as sent: jsonb normalises (duplicate keys,
			// key order, whitespace, numbers), and readers get its form.
			Data:       r.data,
			Metadata:   r.metadata,
			RecordedAt: r.recordedAt.Time.UTC(),
		}
	}
	return out
}

// Append appends events to one stream with appendStatement, which checks
// the expected version and assigns versions and positions.
func (o *Ops) Append(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	if len(events) == 0 {
		return nil, errNoEvents
	}
	a := newEventArrays(len(events))
	if err := a.add(events); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		rows, reports, err := o.runAppend(ctx, false, len(events), streamID, int64(expected), a.ids, a.types, a.data, a.metadata)
		if err != nil {
			return nil, interpretError(err, streamID, expected)
		}
		if len(reports) > 0 {
			return nil, refused(reports[0], streamID, expected)
		}
		if len(rows) == len(events) {
			return recorded(streamID, rows, &a, 0, events), nil
		}
		if err := o.lostRace(ctx, rows, streamID, expected); err != nil {
			return nil, err
		}
		if attempt == conflictAttempts {
			return nil, dialect.Transient(fmt.Errorf("%w: eventfold: stream %q: concurrent appends took its next version %d times", eventfold.ErrStreamOrder, streamID, attempt))
		}
	}
}

// AppendMany appends to several streams with one statement
// (appendManyStatement). A refusal names its element; so does a unique
// violation, found from the key PostgreSQL reports.
func (o *Ops) AppendMany(ctx context.Context, appends []contract.StreamAppend) ([][]eventfold.Event, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	total := 0
	for _, ap := range appends {
		total += len(ap.Events)
	}
	a := newEventArrays(total)
	streams := make([]string, len(appends))
	expected := make([]int64, len(appends))
	counts := make([]int32, len(appends))
	for i, ap := range appends {
		if len(ap.Events) == 0 {
			return nil, &contract.AppendManyError{Index: i, Err: errNoEvents}
		}
		if err := a.add(ap.Events); err != nil {
			return nil, &contract.AppendManyError{Index: i, Err: err}
		}
		streams[i], expected[i], counts[i] = ap.StreamID, int64(ap.Expected), int32(len(ap.Events))
	}
	for attempt := 1; ; attempt++ {
		rows, reports, err := o.runAppend(ctx, true, total, streams, expected, counts, a.ids, a.types, a.data, a.metadata)
		if err != nil {
			i := failedElement(err, appends, &a)
			return nil, &contract.AppendManyError{Index: i, Err: interpretError(err, appends[i].StreamID, appends[i].Expected)}
		}
		cur := make([]int64, len(appends))
		for _, r := range reports {
			i := int(r.element) - 1
			if i < 0 || i >= len(appends) {
				return nil, fmt.Errorf("eventfold: the append statement reported element %d of %d", r.element, len(appends))
			}
			cur[i] = r.cur
		}
		sort.Slice(reports, func(i, j int) bool { return reports[i].element < reports[j].element })
		for _, r := range reports {
			if r.refusal != "" {
				i := int(r.element) - 1
				return nil, &contract.AppendManyError{Index: i, Err: refused(r, appends[i].StreamID, appends[i].Expected)}
			}
		}
		if len(rows) == total {
			out := make([][]eventfold.Event, len(appends))
			first := 0
			for i, ap := range appends {
				out[i] = recorded(ap.StreamID, rows, &a, first, ap.Events)
				first += len(ap.Events)
			}
			return out, nil
		}
		// Some versions were taken by concurrent appends: the first
		// element that misses rows is the one that lost.
		got := make(map[string]map[int64]bool)
		for _, r := range rows {
			if got[r.streamID] == nil {
				got[r.streamID] = make(map[int64]bool)
			}
			got[r.streamID][r.version] = true
		}
		lost := -1
		for i, ap := range appends {
			for v := cur[i] + 1; v <= cur[i]+int64(len(ap.Events)); v++ {
				if !got[ap.StreamID][v] {
					lost = i
					break
				}
			}
			if lost >= 0 {
				break
			}
		}
		if lost < 0 {
			return nil, fmt.Errorf("eventfold: the append statement returned %d rows for %d events", len(rows), total)
		}
		if err := o.lostRace(ctx, rows, appends[lost].StreamID, appends[lost].Expected); err != nil {
			return nil, &contract.AppendManyError{Index: lost, Err: err}
		}
		if attempt == conflictAttempts {
			return nil, &contract.AppendManyError{Index: lost, Err: dialect.Transient(fmt.Errorf("%w: eventfold: stream %q: concurrent appends took its next version %d times", eventfold.ErrStreamOrder, appends[lost].StreamID, attempt))}
		}
	}
}

// failedElement finds the element of a multi-stream append that err is
// about: the event id or the stream of a unique violation; 0 when it
// cannot tell.
func failedElement(err error, appends []contract.StreamAppend, a *eventArrays) int {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != codeUniqueViolation {
		return 0
	}
	// DETAIL: Key (event_id)=(<uuid>) already exists.
	//         Key (stream_id, stream_version)=(<stream>, <version>) already exists.
	const suffix = ") already exists."
	d := pgErr.Detail
	switch pgErr.ConstraintName {
	case constraintEventID:
		const prefix = "Key (event_id)=("
		if !strings.HasPrefix(d, prefix) || !strings.HasSuffix(d, suffix) {
			return 0
		}
		id, perr := uuid.Parse(d[len(prefix) : len(d)-len(suffix)])
		if perr != nil {
			return 0
		}
		// The row that failed is the id's second occurrence in the batch
		// when it occurs twice, else its only one (the log had it).
		found, el := -1, 0
		for i, ap := range appends {
			for range ap.Events {
				if uuid.UUID(a.ids[el].Bytes) == id {
					if found >= 0 {
						return i
					}
					found = i
				}
				el++
			}
		}
		if found >= 0 {
			return found
		}
	case constraintStreamVersion:
		const prefix = "Key (stream_id, stream_version)=("
		if !strings.HasPrefix(d, prefix) || !strings.HasSuffix(d, suffix) {
			return 0
		}
		key := d[len(prefix) : len(d)-len(suffix)]
		j := strings.LastIndex(key, ", ")
		if j < 0 {
			return 0
		}
		stream := key[:j]
		for i, ap := range appends {
			if ap.StreamID == stream {
				return i
			}
		}
	}
	return 0
}

// AppendStatement returns the statement Append sends ($1 stream id, $2
// expected version, $3-$6 event ids, types, data, metadata), for the
// hand-written baseline of package bench (raw-same-sql).
func AppendStatement() string { return appendStatement }
