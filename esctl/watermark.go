package esctl

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
)

// archiveOps is what archive and restore need from a dialect's Ops
// (internal/dialect/<x>/archive.go). The watermark lives in the table
// created by migration 00004_archive.
type archiveOps interface {
	// ArchivedBefore returns the watermark: every event below it was
	// archived. 0 when nothing is, or migration 00004 is not applied.
	ArchivedBefore(ctx context.Context) (int64, error)
	// SetArchivedBefore sets the watermark.
	SetArchivedBefore(ctx context.Context, pos int64) error
	// SwapArchivedBefore moves the watermark from old to pos only if it
	// is still old, and reports whether it did.
	SwapArchivedBefore(ctx context.Context, old, pos int64) (bool, error)
	// FirstPositionRecordedAt returns the lowest position of an event
	// recorded at or after t; 0 when there is none.
	FirstPositionRecordedAt(ctx context.Context, t time.Time) (int64, error)
	// DeleteEventRange deletes the events with from <= position <= through
	// and returns how many it deleted. The streams table is left alone:
	// stream versions go on from where they were.
	DeleteEventRange(ctx context.Context, from, through int64) (int64, error)
	// RestoreEvents inserts events with their original positions, versions,
	// ids and times, skipping positions already present, makes sure each
	// stream's row exists with at least the highest restored version, and
	// returns how many it inserted.
	RestoreEvents(ctx context.Context, events []eventfold.Event) (int64, error)
}

// ArchivedBefore returns the archive watermark of the database ops works
// on: every event below that global position was moved out by `esctl
// archive`. It is 0 when nothing is archived, when migration 00004 is not
// applied, or when the dialect has no archive support.
func ArchivedBefore(ctx context.Context, ops eventfold.Ops) (int64, error) {
	a, ok := ops.(archiveOps)
	if !ok {
		return 0, nil
	}
	w, err := a.ArchivedBefore(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the archive watermark: %w", err)
	}
	return w, nil
}

// CheckReadAll returns an *eventfold.ArchivedError (errors.Is
// eventfold.ErrArchived) when a read of the whole log from position from
// would start inside the archived range, so that it never silently misses
// events. Subscriptions should call it before catching up from a
// checkpoint (with from = checkpoint + 1).
func CheckReadAll(ctx context.Context, ops eventfold.Ops, from int64) error {
	w, err := ArchivedBefore(ctx, ops)
	if err != nil {
		return err
	}
	if w > 0 && from < w {
		return &eventfold.ArchivedError{ArchivedBefore: w, Requested: from}
	}
	return nil
}
