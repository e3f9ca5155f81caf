package eventfold

import (
	"context"
	"time"

	"github.com/eventfold/eventfold/internal/contract"
)

// writeGuardedOps is the Ops a Store hands out (Store.Ops, Store.OpsTx,
// Store.InOpsTx): every operation that writes eventfold's tables or
// schema first asks check, which refuses (ErrSchemaNewer) a schema newer
// than this eventfold knows, as Append does. Reads go on; so do Notify (a
// wake-up, no data), Savepoint and RollbackToSavepoint (they write
// nothing themselves) and Exec (the caller's own SQL, on its own tables).
// The drivers' own Ops (Driver.Ops, Driver.OpsTx) are not guarded: code
// that writes through them calls Store.CheckWritable itself.
type writeGuardedOps struct {
	contract.Ops
	check func(ctx context.Context) error
}

// guard returns ops whose writes ask check first.
func guard(ops Ops, check func(ctx context.Context) error) Ops {
	return writeGuardedOps{Ops: ops, check: check}
}

func (o writeGuardedOps) Append(ctx context.Context, streamID string, expected ExpectedVersion, events []EventData) ([]Event, error) {
	if err := o.check(ctx); err != nil {
		return nil, err
	}
	return o.Ops.Append(ctx, streamID, expected, events)
}

func (o writeGuardedOps) AppendMany(ctx context.Context, appends []StreamAppend) ([][]Event, error) {
	if err := o.check(ctx); err != nil {
		return nil, err
	}
	return o.Ops.AppendMany(ctx, appends)
}

func (o writeGuardedOps) CreateCheckpoint(ctx context.Context, name string, pos int64) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.CreateCheckpoint(ctx, name, pos)
}

func (o writeGuardedOps) AdvanceCheckpoint(ctx context.Context, name string, expected, pos int64) (bool, error) {
	if err := o.check(ctx); err != nil {
		return false, err
	}
	return o.Ops.AdvanceCheckpoint(ctx, name, expected, pos)
}

func (o writeGuardedOps) SetCheckpoint(ctx context.Context, name string, pos int64) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.SetCheckpoint(ctx, name, pos)
}

func (o writeGuardedOps) DeleteCheckpoint(ctx context.Context, name string) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.DeleteCheckpoint(ctx, name)
}

func (o writeGuardedOps) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := o.check(ctx); err != nil {
		return false, err
	}
	return o.Ops.AcquireLease(ctx, name, owner, ttl)
}

func (o writeGuardedOps) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.ReleaseLease(ctx, name, owner)
}

func (o writeGuardedOps) RecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) (bool, error) {
	if err := o.check(ctx); err != nil {
		return false, err
	}
	return o.Ops.RecordCommand(ctx, scope, id, commandType, payloadHash, refs)
}

func (o writeGuardedOps) PruneCommands(ctx context.Context, before time.Time) (int64, error) {
	if err := o.check(ctx); err != nil {
		return 0, err
	}
	return o.Ops.PruneCommands(ctx, before)
}

func (o writeGuardedOps) WriteCommitMarker(ctx context.Context, id string) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.WriteCommitMarker(ctx, id)
}

func (o writeGuardedOps) ClaimCommitMarker(ctx context.Context, id string) (bool, error) {
	if err := o.check(ctx); err != nil {
		return false, err
	}
	return o.Ops.ClaimCommitMarker(ctx, id)
}

func (o writeGuardedOps) PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error) {
	if err := o.check(ctx); err != nil {
		return 0, err
	}
	return o.Ops.PruneCommitMarkers(ctx, before)
}

func (o writeGuardedOps) SetArchivedBefore(ctx context.Context, pos int64) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.SetArchivedBefore(ctx, pos)
}

func (o writeGuardedOps) SwapArchivedBefore(ctx context.Context, old, pos int64) (bool, error) {
	if err := o.check(ctx); err != nil {
		return false, err
	}
	return o.Ops.SwapArchivedBefore(ctx, old, pos)
}

func (o writeGuardedOps) DeleteEventRange(ctx context.Context, from, through int64) (int64, error) {
	if err := o.check(ctx); err != nil {
		return 0, err
	}
	return o.Ops.DeleteEventRange(ctx, from, through)
}

func (o writeGuardedOps) RestoreEvents(ctx context.Context, events []Event) (int64, error) {
	if err := o.check(ctx); err != nil {
		return 0, err
	}
	return o.Ops.RestoreEvents(ctx, events)
}

// CheckPositions is refused only with repair: the check alone reads.
func (o writeGuardedOps) CheckPositions(ctx context.Context, repair bool) (PositionCheck, error) {
	if repair {
		if err := o.check(ctx); err != nil {
			return PositionCheck{}, err
		}
	}
	return o.Ops.CheckPositions(ctx, repair)
}

func (o writeGuardedOps) EnableNotifyTrigger(ctx context.Context) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.EnableNotifyTrigger(ctx)
}

func (o writeGuardedOps) DisableNotifyTrigger(ctx context.Context) error {
	if err := o.check(ctx); err != nil {
		return err
	}
	return o.Ops.DisableNotifyTrigger(ctx)
}
