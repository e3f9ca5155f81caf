package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dbsqlc/postgresdb"
)

// The archive watermark (sql/postgres/00004_archive.sql) and the range
// operations behind `esctl archive` and `esctl restore`. esctl
// type-asserts Ops to its own interface; plain values only.

// ArchivedBefore returns the archive watermark: every event below it was
// archived. 0 when nothing is, or when migration 00004 is not applied yet
// (so that reads keep working on a database migrated only partly).
func (o *Ops) ArchivedBefore(ctx context.Context) (int64, error) {
	w, err := o.q.ArchiveWatermark(ctx, o.db)
	if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read archive watermark: %w", err)
	}
	return w, nil
}

func isUndefinedTable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01"
}

// SetArchivedBefore sets the archive watermark.
func (o *Ops) SetArchivedBefore(ctx context.Context, pos int64) error {
	if err := o.q.SetArchiveWatermark(ctx, o.db, pos); err != nil {
		return fmt.Errorf("set archive watermark to %d: %w", pos, err)
	}
	return nil
}

// SwapArchivedBefore moves the archive watermark from old to pos only if
// it is still old, and reports whether it did: of two archive or restore
// runs that read the same watermark, only one may move it (the other
// would overwrite it with a range that no longer matches the hot table).
func (o *Ops) SwapArchivedBefore(ctx context.Context, old, pos int64) (bool, error) {
	n, err := o.q.SwapArchiveWatermark(ctx, o.db, postgresdb.SwapArchiveWatermarkParams{NewBefore: pos, OldBefore: old})
	if err != nil {
		return false, fmt.Errorf("move archive watermark from %d to %d: %w", old, pos, err)
	}
	return n == 1, nil
}

// FirstPositionRecordedAt returns the lowest position of an event recorded
// at or after t; 0 when there is none.
func (o *Ops) FirstPositionRecordedAt(ctx context.Context, t time.Time) (int64, error) {
	p, err := o.q.ArchiveFirstPositionRecordedAt(ctx, o.db, pgtype.Timestamptz{Time: t.UTC(), Valid: true})
	if err != nil {
		return 0, fmt.Errorf("first position recorded at or after %s: %w", t.Format(time.RFC3339), err)
	}
	return p, nil
}

// DeleteEventRange deletes the events with from <= position <= through.
// The streams table is left alone.
func (o *Ops) DeleteEventRange(ctx context.Context, from, through int64) (int64, error) {
	n, err := o.q.ArchiveDeleteEventRange(ctx, o.db, postgresdb.ArchiveDeleteEventRangeParams{FromPosition: from, ThroughPosition: through})
	if err != nil {
		return 0, fmt.Errorf("delete events [%d, %d]: %w", from, through, err)
	}
	return n, nil
}

// RestoreEvents inserts archived events with their original positions,
// versions, ids and times, skipping positions already present, and makes
// sure each stream's row is at least at its highest restored version.
func (o *Ops) RestoreEvents(ctx context.Context, events []eventfold.Event) (int64, error) {
	if len(events) == 0 {
		return 0, nil
	}
	for i := range events {
		events[i].RecordedAt = events[i].RecordedAt.UTC()
	}
	b, err := json.Marshal(events)
	if err != nil {
		return 0, fmt.Errorf("restore events: %w", err)
	}
	// As text, cast to jsonb by the statement: every pgx QueryExecMode
	// sends a string as is (bytes go as bytea text under simple protocol).
	doc := string(b)
	// interpretError: a deadlock with a concurrent restore is transient.
	if err := o.q.ArchiveRestoreStreams(ctx, o.db, doc); err != nil {
		return 0, fmt.Errorf("restore stream rows: %w", interpretError(err, "", eventfold.Any))
	}
	n, err := o.q.ArchiveRestoreEvents(ctx, o.db, doc)
	if err != nil {
		return 0, fmt.Errorf("restore events: %w", interpretError(err, "", eventfold.Any))
	}
	return n, nil
}
