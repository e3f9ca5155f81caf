package mssql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/eventfold/eventfold"
)

// The archive watermark (sql/mssql/00004_archive.sql) and the range
// operations behind `esctl archive` and `esctl restore`, in hand-written
// T-SQL (sqlc has no SQL Server engine). Untested here: no SQL Server runs
// on the development machines; the conformance suite covers it in CI.

// ArchivedBefore returns the archive watermark: every event below it was
// archived. 0 when nothing is, or when migration 00004 is not applied yet.
func (o *Ops) ArchivedBefore(ctx context.Context) (int64, error) {
	var w int64
	err := o.db.QueryRowContext(ctx, `SELECT archived_before FROM eventfold.archive_watermark WHERE id = 1`).Scan(&w)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	for _, e := range sqlErrors(err) {
		if e.Number == 208 { // invalid object name: migration 00004 not applied
			return 0, nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("read archive watermark: %w", interpretError(err))
	}
	return w, nil
}

// SetArchivedBefore sets the archive watermark.
func (o *Ops) SetArchivedBefore(ctx context.Context, pos int64) error {
	_, err := o.db.ExecContext(ctx, `
MERGE eventfold.archive_watermark WITH (HOLDLOCK) AS t
USING (SELECT CAST(1 AS TINYINT) AS id) AS s ON t.id = s.id
WHEN MATCHED THEN UPDATE SET archived_before = @p1, updated_at = SYSUTCDATETIME()
WHEN NOT MATCHED THEN INSERT (id, archived_before) VALUES (1, @p1);`, pos)
	if err != nil {
		return fmt.Errorf("set archive watermark to %d: %w", pos, interpretError(err))
	}
	return nil
}

// SwapArchivedBefore moves the archive watermark from old to pos only if
// it is still old, and reports whether it did: of two archive or restore
// runs that read the same watermark, only one may move it (the other
// would overwrite it with a range that no longer matches the hot table).
func (o *Ops) SwapArchivedBefore(ctx context.Context, old, pos int64) (bool, error) {
	res, err := o.db.ExecContext(ctx, `
UPDATE eventfold.archive_watermark SET archived_before = @p1, updated_at = SYSUTCDATETIME()
WHERE id = 1 AND archived_before = @p2;`, pos, old)
	if err != nil {
		return false, fmt.Errorf("move archive watermark from %d to %d: %w", old, pos, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("move archive watermark from %d to %d: %w", old, pos, interpretError(err))
	}
	return n == 1, nil
}

// FirstPositionRecordedAt returns the lowest position of an event recorded
// at or after t; 0 when there is none. The CAST keeps the comparison on
// the column's own type (see PruneCommands).
func (o *Ops) FirstPositionRecordedAt(ctx context.Context, t time.Time) (int64, error) {
	var p int64
	err := o.db.QueryRowContext(ctx,
		`SELECT COALESCE(MIN(global_position), 0) FROM eventfold.events WHERE recorded_at >= CAST(@p1 AS DATETIME2(6))`, t.UTC()).Scan(&p)
	if err != nil {
		return 0, fmt.Errorf("first position recorded at or after %s: %w", t.Format(time.RFC3339), interpretError(err))
	}
	return p, nil
}

// DeleteEventRange deletes the events with from <= position <= through.
// The streams table and the position counter are left alone.
func (o *Ops) DeleteEventRange(ctx context.Context, from, through int64) (int64, error) {
	res, err := o.db.ExecContext(ctx,
		`DELETE FROM eventfold.events WHERE global_position >= @p1 AND global_position <= @p2`, from, through)
	if err != nil {
		return 0, fmt.Errorf("delete events [%d, %d]: %w", from, through, interpretError(err))
	}
	return res.RowsAffected()
}

// RestoreEvents inserts archived events with their original positions,
// versions, ids and times, skipping positions already present, makes sure
// each stream's row is at least at its highest restored version and that
// the position counter is past every restored position. Run it inside a
// transaction: it issues one statement per event.
func (o *Ops) RestoreEvents(ctx context.Context, events []eventfold.Event) (int64, error) {
	var inserted, last int64
	top := map[string]int64{}
	for _, e := range events {
		res, err := o.db.ExecContext(ctx, `
INSERT INTO eventfold.events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
SELECT @p1, @p2, @p3, @p4, @p5, @p6, @p7, @p8
WHERE NOT EXISTS (SELECT 1 FROM eventfold.events WITH (UPDLOCK, HOLDLOCK) WHERE global_position = @p1);`,
			e.GlobalPosition, e.StreamID, e.StreamVersion, e.ID, e.Type, mssql.NVarCharMax(e.Data), mssql.NVarCharMax(e.Metadata), e.RecordedAt.UTC())
		if err != nil {
			return inserted, fmt.Errorf("restore event at position %d: %w", e.GlobalPosition, interpretError(err))
		}
		n, _ := res.RowsAffected()
		inserted += n
		top[e.StreamID] = max(top[e.StreamID], e.StreamVersion)
		last = max(last, e.GlobalPosition)
	}
	for stream, version := range top {
		_, err := o.db.ExecContext(ctx, `
MERGE eventfold.streams WITH (HOLDLOCK) AS t
USING (SELECT @p1 AS stream_id, @p2 AS version) AS s ON t.stream_id = s.stream_id
WHEN MATCHED AND t.version < s.version THEN UPDATE SET version = s.version, updated_at = SYSUTCDATETIME()
WHEN NOT MATCHED THEN INSERT (stream_id, version) VALUES (s.stream_id, s.version);`, stream, version)
		if err != nil {
			return inserted, fmt.Errorf("restore stream row %q: %w", stream, interpretError(err))
		}
	}
	if last > 0 {
		_, err := o.db.ExecContext(ctx,
			`UPDATE eventfold.position SET last_position = @p1 WHERE id = 1 AND last_position < @p1`, last)
		if err != nil {
			return inserted, fmt.Errorf("raise the position counter to %d: %w", last, interpretError(err))
		}
	}
	return inserted, nil
}
