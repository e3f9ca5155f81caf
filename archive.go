package eventfold

import (
	"context"
	"fmt"
)

// ArchivedBefore returns the archive watermark: every event below this
// global position was archived (moved out with `esctl archive`); 0 when
// nothing is. Reads that reach below it fail with *ArchivedError.
func (s *Store[TTx]) ArchivedBefore(ctx context.Context) (int64, error) {
	return archivedBefore(ctx, s.driver.Ops())
}

// HeadOf returns ops's head (Ops.Head), and when the hot table holds
// nothing the head can reach (its head is 0) at least the archive
// watermark - 1: every position below the watermark is settled (archive
// moves out only a prefix up to a head it read). Without it a log archived
// whole has head 0, and whatever starts "at the head" (Tail and
// subscriptions with StartAtHead, esctl tail, subscriptions reset) would
// start inside the archive and fail with ErrArchived. The watermark costs
// a query only when the head is 0. Store.Head uses it.
func HeadOf(ctx context.Context, ops Ops) (int64, error) {
	h, err := ops.Head(ctx)
	if err != nil || h != 0 {
		return h, err
	}
	w, err := archivedBefore(ctx, ops)
	if err != nil {
		return 0, err
	}
	return max(w-1, 0), nil
}

func archivedBefore(ctx context.Context, ops Ops) (int64, error) {
	w, err := ops.ArchivedBefore(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the archive watermark: %w", err)
	}
	return w, nil
}

// CheckReadAll returns an *ArchivedError (errors.Is ErrArchived) when a
// read of the whole log from position from would start inside the
// archived range, so that it never silently misses events. ReadAll checks
// it itself; esctl (tail, replay, subscriptions reset) and code reading
// through Ops directly call it before catching up from a checkpoint (with
// from = checkpoint + 1).
func CheckReadAll(ctx context.Context, ops Ops, from int64) error {
	w, err := archivedBefore(ctx, ops)
	if err != nil {
		return err
	}
	if w > 0 && from < w {
		return &ArchivedError{ArchivedBefore: w, Requested: from}
	}
	return nil
}

// checkArchivedStream tells whether a stream read (limit events from
// version from, forward or backward; from 0 backward means the end) that
// returned evs fell short because the stream's oldest events are archived.
// Archiving removes a prefix of the log, so only a stream's oldest versions
// can be missing. It costs a query only when the read came up short.
func checkArchivedStream(ctx context.Context, ops Ops, stream string, from int64, limit int, backward bool, evs []Event) error {
	var first int64 // the first version the read should have returned
	switch {
	case !backward && len(evs) > 0:
		if evs[0].StreamVersion == from {
			return nil
		}
		first = from
	case backward && len(evs) > 0:
		start := evs[0].StreamVersion
		if from > 0 && from < start {
			start = from
		}
		if int64(len(evs)) >= min(int64(limit), start) {
			return nil
		}
		first = start - int64(len(evs))
	default: // nothing came back: past the end, no stream, or all archived
		version, err := ops.StreamVersion(ctx, stream)
		if err != nil {
			return fmt.Errorf("version of stream %q: %w", stream, err)
		}
		if version == 0 || (!backward && from > version) {
			return nil
		}
		first = from
		if backward && (from == 0 || from > version) {
			first = version
		}
	}
	w, err := archivedBefore(ctx, ops)
	if err != nil || w == 0 {
		return err
	}
	return fmt.Errorf("stream %q: version %d is archived: %w", stream, first, &ArchivedError{ArchivedBefore: w, Requested: first})
}

// Identity returns the store's identity: a random id made when migration
// 00009 ran, written into every archive file so that `esctl restore` can
// refuse an archive taken from another store. It is "" when that migration
// is not applied.
func (s *Store[TTx]) Identity(ctx context.Context) (string, error) {
	id, err := s.driver.Ops().StoreIdentity(ctx)
	if err != nil {
		return "", fmt.Errorf("eventfold: %w", err)
	}
	return id, nil
}
