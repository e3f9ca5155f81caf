package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
)

// The archive watermark (sql/mysql/00004_archive.sql) and the range
// operations behind `esctl archive` and `esctl restore`. esctl
// type-asserts Ops to its own interface; plain values only.

// ArchivedBefore returns the archive watermark: every event below it was
// archived. 0 when nothing is, or when migration 00004 is not applied yet
// (so that reads keep working on a database migrated only partly).
func (o *Ops) ArchivedBefore(ctx context.Context) (int64, error) {
	w, err := o.q.ArchiveWatermark(ctx, o.db)
	var me *gomysql.MySQLError
	if errors.Is(err, sql.ErrNoRows) || (errors.As(err, &me) && me.Number == 1146) {
		return 0, nil // 1146: table doesn't exist
	}
	if err != nil {
		return 0, fmt.Errorf("read archive watermark: %w", err)
	}
	return w, nil
}

// SetArchivedBefore sets the archive watermark, after raising the position
// floor to pos - 1 (raiseFloor).
func (o *Ops) SetArchivedBefore(ctx context.Context, pos int64) error {
	if err := o.raiseFloor(ctx, pos-1); err != nil {
		return err
	}
	err := o.q.SetArchiveWatermark(ctx, o.db, mysqldb.SetArchiveWatermarkParams{ArchivedBefore: pos, UpdatedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("set archive watermark to %d: %w", pos, err)
	}
	return nil
}

// SwapArchivedBefore moves the archive watermark from old to pos only if
// it is still old, and reports whether it did: of two archive or restore
// runs that read the same watermark, only one may move it (the other
// would overwrite it with a range that no longer matches the hot table).
func (o *Ops) SwapArchivedBefore(ctx context.Context, old, pos int64) (bool, error) {
	if err := o.raiseFloor(ctx, pos-1); err != nil {
		return false, err
	}
	n, err := o.q.SwapArchiveWatermark(ctx, o.db, mysqldb.SwapArchiveWatermarkParams{NewBefore: pos, OldBefore: old, UpdatedAt: time.Now().UTC()})
	if err != nil {
		return false, fmt.Errorf("move archive watermark from %d to %d: %w", old, pos, err)
	}
	return n == 1, nil
}

// raiseFloor raises eventfold_position.last_position, the floor that the
// append procedures refuse to hand out positions at or below (00018), to
// pos, before the watermark moves above it: once the events below the
// watermark are deleted, nothing else in the table remembers that their
// positions were used (a TRUNCATE, an ALTER TABLE or a dump into a new
// database would let AUTO_INCREMENT hand them out again). Raising it first
// is harmless: every position up to the new watermark was handed out
// already. It takes the gate row's lock, so it waits for appends in flight
// and holds new ones back until it commits; a plain read first spares that
// when the floor is already high enough (a lowered watermark, a restore).
func (o *Ops) raiseFloor(ctx context.Context, pos int64) error {
	if pos <= 0 {
		return nil
	}
	var cur int64
	err := o.db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&cur)
	if err == nil && cur >= pos {
		return nil
	}
	if err := o.q.ArchiveRaisePositionCounter(ctx, o.db, pos); err != nil {
		return fmt.Errorf("raise the position floor to %d: %w", pos, interpretError(err))
	}
	return nil
}

// FirstPositionRecordedAt returns the lowest position of an event recorded
// at or after t; 0 when there is none.
func (o *Ops) FirstPositionRecordedAt(ctx context.Context, t time.Time) (int64, error) {
	p, err := o.q.ArchiveFirstPositionRecordedAt(ctx, o.db, t.UTC())
	if err != nil {
		return 0, fmt.Errorf("first position recorded at or after %s: %w", t.Format(time.RFC3339), err)
	}
	return p, nil
}

// DeleteEventRange deletes the events with from <= position <= through.
// The streams table and the position counter are left alone: positions are
// never handed out twice.
func (o *Ops) DeleteEventRange(ctx context.Context, from, through int64) (int64, error) {
	n, err := o.q.ArchiveDeleteEventRange(ctx, o.db, mysqldb.ArchiveDeleteEventRangeParams{FromPosition: from, ThroughPosition: through})
	if err != nil {
		return 0, fmt.Errorf("delete events [%d, %d]: %w", from, through, err)
	}
	return n, nil
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
		n, err := o.q.ArchiveRestoreEvent(ctx, o.db, mysqldb.ArchiveRestoreEventParams{
			GlobalPosition: e.GlobalPosition, StreamID: e.StreamID, StreamVersion: e.StreamVersion,
			EventID: e.ID, EventType: e.Type, Data: e.Data, Metadata: e.Metadata,
			RecordedAt: e.RecordedAt.UTC(),
		})
		if err != nil {
			return inserted, fmt.Errorf("restore event at position %d: %w", e.GlobalPosition, interpretError(err))
		}
		if n == 1 { // 1: inserted; 0: the position was there already
			inserted++
		}
		top[e.StreamID] = max(top[e.StreamID], e.StreamVersion)
		last = max(last, e.GlobalPosition)
	}
	now := time.Now().UTC()
	for stream, version := range top {
		err := o.q.ArchiveRestoreStream(ctx, o.db, mysqldb.ArchiveRestoreStreamParams{StreamID: stream, Version: version, UpdatedAt: now})
		if err != nil {
			return inserted, fmt.Errorf("restore stream row %q: %w", stream, interpretError(err))
		}
	}
	if last > 0 {
		if err := o.q.ArchiveRaisePositionCounter(ctx, o.db, last); err != nil {
			return inserted, fmt.Errorf("raise the position counter to %d: %w", last, interpretError(err))
		}
	}
	return inserted, nil
}
