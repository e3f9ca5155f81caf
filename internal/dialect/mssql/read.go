package mssql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
)

// eventColumns is the select list every event read uses, in scanEvents'
// order. UNIQUEIDENTIFIER is converted to text on the server: go-mssqldb
// would otherwise hand back its 16 bytes in SQL Server's mixed-endian order.
const eventColumns = `global_position, stream_id, stream_version,
	CONVERT(NVARCHAR(36), event_id) AS event_id, event_type, data, metadata, recorded_at`

const (
	// READCOMMITTEDLOCK: see ReadAll.
	readAllSQL = `SELECT TOP (@p2) ` + eventColumns + `
FROM eventfold.events WITH (READCOMMITTEDLOCK)
WHERE global_position >= @p1
ORDER BY global_position`

	readStreamForwardSQL = `SELECT TOP (@p3) ` + eventColumns + `
FROM eventfold.events
WHERE stream_id = @p1 AND stream_version >= @p2
ORDER BY stream_version`

	readStreamBackwardSQL = `SELECT TOP (@p3) ` + eventColumns + `
FROM eventfold.events
WHERE stream_id = @p1 AND stream_version <= @p2
ORDER BY stream_version DESC`
)

// ReadAll reads up to limit events with global_position >= from, in
// position order. No horizon filter is needed on SQL Server: positions
// commit in order (see the package doc), so any position a reader can see
// has no uncommitted position below it.
//
// The read is a locking one (READCOMMITTEDLOCK) even when the database
// has READ_COMMITTED_SNAPSHOT ON. "The previous appender released the
// counter lock, so its events are visible" holds for a locking read by
// definition: it reads the committed row as soon as the lock is gone. A
// snapshot read instead sees whatever the engine counted as committed when
// the statement began, and whether a committer is already in every new
// snapshot when its locks are released is an engine internal: on MariaDB
// it is not, and readers skipped events (issue 16). SQL Server documents
// snapshot reads as "committed before the statement began", which by
// strict two-phase locking would include the earlier appender; eventfold
// does not rely on it. The cost: a reader of the newest events waits for
// the one append transaction in flight (appends serialise on the counter,
// so there is at most one), as every reader does with RCSI off.
func (o *Ops) ReadAll(ctx context.Context, from int64, limit int) ([]eventfold.Event, error) {
	rows, err := o.db.QueryContext(ctx, readAllSQL, from, int64(dialect.ReadLimitClamp(limit)))
	if err != nil {
		return nil, fmt.Errorf("read events from position %d: %w", from, interpretError(err))
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read events from position %d: %w", from, interpretError(err))
	}
	return evs, nil
}

// ReadStream reads up to limit events of one stream, forward from version
// from, or backward from it (from < 1: from the last event).
func (o *Ops) ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]eventfold.Event, error) {
	if endsWithSpace(streamID) {
		return nil, nil // no such stream can exist, see the package doc
	}
	query := readStreamForwardSQL
	if backward {
		query = readStreamBackwardSQL
		if from < 1 {
			from = math.MaxInt64
		}
	}
	rows, err := o.db.QueryContext(ctx, query, streamID, from, int64(dialect.ReadLimitClamp(limit)))
	if err != nil {
		return nil, fmt.Errorf("read stream from version %d: %w", from, interpretError(err))
	}
	evs, err := scanEvents(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream from version %d: %w", from, interpretError(err))
	}
	return evs, nil
}

// scanEvents reads rows selected with eventColumns and closes them.
func scanEvents(rows *sql.Rows) ([]eventfold.Event, error) {
	defer rows.Close()
	var out []eventfold.Event
	for rows.Next() {
		var (
			e              eventfold.Event
			id, data, meta string
			at             time.Time
		)
		if err := rows.Scan(&e.GlobalPosition, &e.StreamID, &e.StreamVersion, &id, &e.Type, &data, &meta, &at); err != nil {
			return nil, fmt.Errorf("scan event: %w", interpretError(err))
		}
		e.ID = strings.ToLower(id) // SQL Server renders UUIDs in upper case
		e.Data = json.RawMessage(data)
		e.Metadata = json.RawMessage(meta)
		e.RecordedAt = utc(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, interpretError(err)
	}
	if err := rows.Close(); err != nil {
		return nil, interpretError(err)
	}
	return out, nil
}
