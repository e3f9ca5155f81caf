package esctl

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// archiveOps is the part of the store/dialect contract that archive and
// restore use (migration 00004_archive).
type archiveOps = contract.Archive

// ArchivedBefore returns the archive watermark of the database ops works
// on: every event below that global position was moved out by `esctl
// archive`. It is 0 when nothing is archived, when migration 00004 is not
// applied, or when the dialect has no archive support.
func ArchivedBefore(ctx context.Context, ops eventfold.Ops) (int64, error) {
	w, err := ops.ArchivedBefore(ctx)
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
