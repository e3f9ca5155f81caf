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
)

// appendStatement appends to one stream: $1 stream id, $2 expected
// version, $3-$6 event ids, types, data and metadata. It is the body of
// eventfold.append_events_returning_data since migration 00015 (with the
// function's arguments for $1-$6; TestAppendStatementMatchesFunction keeps
// the two in step), sent as one prepared statement: no plpgsql on the hot
// path, no stream row. See sql/postgres/00015_append_statement.sql for
// why each check holds without the row lock.
const appendStatement = `WITH b AS MATERIALIZED (
    SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base,
           o.last_value AS off,
           l.stream_version AS last_version,
           l.global_position AS last_position,
           (SELECT s.version FROM eventfold.streams s WHERE s.stream_id = $1::text) AS kept_version
      FROM eventfold.position_offset o
      LEFT JOIN LATERAL (
          SELECT e.stream_version, e.global_position
            FROM eventfold.events e
           WHERE e.stream_id = $1::text
           ORDER BY e.stream_version DESC
           LIMIT 1) l ON true
), c AS MATERIALIZED (
    SELECT b.base, b.last_position,
           greatest(b.last_version, b.kept_version, 0) AS cur,
           coalesce((SELECT max(e.global_position) + 1
                       FROM eventfold.events e
                      WHERE e.global_position >= b.base
                        AND e.global_position < b.base + 1048576), b.base) AS next,
           (SELECT min(e.global_position)
              FROM eventfold.events e
             WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                 b.base + 1048576)) AS foreign_position
      FROM b
), r AS MATERIALIZED (
    SELECT c.cur, c.next,
           CASE
           WHEN NOT ($2::bigint = -1
                     OR ($2::bigint = -2 AND c.cur = 0)
                     OR ($2::bigint = -3 AND c.cur > 0)
                     OR ($2::bigint >= 0 AND c.cur = $2::bigint))
                THEN eventfold.append_refuse('EF001', $1::text, $2::bigint, c.cur, NULL, NULL)
           WHEN c.foreign_position IS NOT NULL
                THEN eventfold.append_refuse('EF002', $1::text, $2::bigint, c.foreign_position, c.base, NULL)
           WHEN c.last_position >= c.next
                THEN eventfold.append_refuse('EF003', $1::text, $2::bigint, c.last_position, c.next, NULL)
           WHEN c.next - c.base + cardinality($3::uuid[]) > 1048576
                THEN eventfold.append_refuse('54000', $1::text, $2::bigint, c.next - c.base, cardinality($3::uuid[]), NULL)
           ELSE 0
           END AS refused
      FROM c
), ins AS (
    INSERT INTO eventfold.events AS e
           (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
    SELECT r.next + u.ord - 1, $1::text, r.cur + u.ord, u.event_id, u.event_type, u.data, u.metadata
      FROM r, unnest($3::uuid[], $4::text[], $5::jsonb[], $6::jsonb[])
              WITH ORDINALITY AS u(event_id, event_type, data, metadata, ord)
     WHERE r.refused = 0
    ON CONFLICT ON CONSTRAINT events_stream_id_stream_version_key DO NOTHING
    RETURNING e.global_position, e.stream_version, e.recorded_at, e.data, e.metadata
)
SELECT i.global_position, i.stream_version, i.recorded_at, i.data, i.metadata
  FROM ins i
 WHERE (SELECT CASE WHEN count(*) < cardinality($3::uuid[])
                    THEN eventfold.append_refuse('conflict', $1::text, $2::bigint, NULL, NULL, NULL)
                    ELSE 0
               END
          FROM ins) = 0
 ORDER BY i.global_position`

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
), b AS MATERIALIZED (
    SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base,
           o.last_value AS off
      FROM eventfold.position_offset o
), c AS MATERIALIZED (
    SELECT b.base,
           coalesce((SELECT max(e.global_position) + 1
                       FROM eventfold.events e
                      WHERE e.global_position >= b.base
                        AND e.global_position < b.base + 1048576), b.base) AS next,
           (SELECT min(e.global_position)
              FROM eventfold.events e
             WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                 b.base + 1048576)) AS foreign_position
      FROM b
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
    SELECT sum(CASE
           WHEN NOT (s.expected = -1
                     OR (s.expected = -2 AND s.cur = 0)
                     OR (s.expected = -3 AND s.cur > 0)
                     OR (s.expected >= 0 AND s.cur = s.expected))
                THEN eventfold.append_refuse('EF001', s.stream_id, s.expected, s.cur, NULL, (s.k - 1)::int)
           WHEN c.foreign_position IS NOT NULL
                THEN eventfold.append_refuse('EF002', s.stream_id, s.expected, c.foreign_position, c.base, (s.k - 1)::int)
           WHEN s.last_position >= c.next
                THEN eventfold.append_refuse('EF003', s.stream_id, s.expected, s.last_position, c.next + s.first, (s.k - 1)::int)
           WHEN c.next - c.base + s.first + s.n > 1048576
                THEN eventfold.append_refuse('54000', s.stream_id, s.expected, c.next - c.base + s.first, s.n, (s.k - 1)::int)
           ELSE 0
           END) AS refused
      FROM s, c
), ins AS (
    INSERT INTO eventfold.events AS e
           (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
    SELECT c.next + u.g - 1, s.stream_id, s.cur + u.g - s.first, u.event_id, u.event_type, u.data, u.metadata
      FROM r, c, unnest($4::uuid[], $5::text[], $6::jsonb[], $7::jsonb[])
                 WITH ORDINALITY AS u(event_id, event_type, data, metadata, g)
      JOIN s ON u.g > s.first AND u.g <= s.first + s.n
     WHERE r.refused = 0
    ON CONFLICT ON CONSTRAINT events_stream_id_stream_version_key DO NOTHING
    RETURNING e.global_position, e.stream_id, e.stream_version, e.recorded_at, e.data, e.metadata
)
SELECT i.global_position, i.stream_version, i.recorded_at, i.data, i.metadata
  FROM ins i
 WHERE (SELECT coalesce(min(CASE WHEN coalesce(w.n, 0) < t.n
                                 THEN eventfold.append_refuse('conflict', t.stream_id, t.expected, NULL, NULL, (t.k - 1)::int)
                            END), 0)
          FROM (SELECT s.stream_id, min(s.k) AS k, sum(s.n) AS n, (array_agg(s.expected ORDER BY s.k))[1] AS expected
                  FROM s
                 GROUP BY s.stream_id) t
          LEFT JOIN (SELECT i2.stream_id, count(*) AS n
                       FROM ins i2
                      GROUP BY i2.stream_id) w ON w.stream_id = t.stream_id) = 0
 ORDER BY i.global_position`

// errNoEvents refuses an empty append before any SQL (the statements
// would append nothing and check nothing), as the DBA function does.
var errNoEvents = errors.New("eventfold.append_events: no events to append")

// eventArrays are the per-event arguments of both statements.
type eventArrays struct {
	ids      []pgtype.UUID
	types    []string
	data     [][]byte
	metadata [][]byte
}

func newEventArrays(n int) eventArrays {
	return eventArrays{
		ids:      make([]pgtype.UUID, 0, n),
		types:    make([]string, 0, n),
		data:     make([][]byte, 0, n),
		metadata: make([][]byte, 0, n),
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
		a.data = append(a.data, e.Data)
		m := []byte(e.Metadata)
		if len(m) == 0 {
			m = []byte(`{}`)
		}
		a.metadata = append(a.metadata, m)
	}
	return nil
}

// appendedRow is one row the append statements return.
type appendedRow struct {
	position, version int64
	recordedAt        pgtype.Timestamptz
	data, metadata    []byte
}

// runAppend runs an append statement and returns its rows in position
// order (the statements sort them; this does not rely on it).
func (o *Ops) runAppend(ctx context.Context, query string, n int, args ...any) ([]appendedRow, error) {
	rows, err := o.db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]appendedRow, 0, n)
	for rows.Next() {
		var r appendedRow
		if err := rows.Scan(&r.position, &r.version, &r.recordedAt, &r.data, &r.metadata); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return out[i].position < out[j].position }) {
		sort.Slice(out, func(i, j int) bool { return out[i].position < out[j].position })
	}
	return out, nil
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
	rows, err := o.runAppend(ctx, appendStatement, len(events), streamID, int64(expected), a.ids, a.types, a.data, a.metadata)
	if err != nil {
		return nil, interpretError(err, streamID, expected)
	}
	if len(rows) != len(events) {
		return nil, fmt.Errorf("eventfold: the append statement returned %d rows for %d events", len(rows), len(events))
	}
	return recorded(streamID, rows, &a, 0, events), nil
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
	rows, err := o.runAppend(ctx, appendManyStatement, total, streams, expected, counts, a.ids, a.types, a.data, a.metadata)
	if err != nil {
		i := failedElement(err, appends, &a)
		return nil, &contract.AppendManyError{Index: i, Err: interpretError(err, appends[i].StreamID, appends[i].Expected)}
	}
	if len(rows) != total {
		return nil, fmt.Errorf("eventfold: the append statement returned %d rows for %d events", len(rows), total)
	}
	out := make([][]eventfold.Event, len(appends))
	first := 0
	for i, ap := range appends {
		out[i] = recorded(ap.StreamID, rows, &a, first, ap.Events)
		first += len(ap.Events)
	}
	return out, nil
}

// failedElement finds the element of a multi-stream append that err is
// about: the COLUMN field of a refusal (eventfold.append_refuse), the
// event id or the stream of a unique violation; 0 when it cannot tell.
func failedElement(err error, appends []contract.StreamAppend, a *eventArrays) int {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return 0
	}
	if i, err := strconv.Atoi(pgErr.ColumnName); err == nil && i >= 0 && i < len(appends) {
		return i
	}
	if pgErr.Code != codeUniqueViolation {
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
