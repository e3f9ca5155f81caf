package mysql

import (
	"context"
	"errors"
	"fmt"
	"time"

	"database/sql"

	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
)

// Checkpoints and leases of package listener (tables from
// sql/mysql/00003_subscriptions.sql). The listener type-asserts Ops to
// its own interface; these methods take and return plain values so that no
// package imports another's types.

// GetCheckpoint returns a subscription's checkpoint; found is false when it
// has none yet.
func (o *Ops) GetCheckpoint(ctx context.Context, name string) (pos int64, found bool, err error) {
	pos, err = o.q.GetCheckpoint(ctx, o.db, name)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("get checkpoint %q: %w", name, err)
	}
	return pos, true, nil
}

// CreateCheckpoint creates a checkpoint at pos unless one exists.
func (o *Ops) CreateCheckpoint(ctx context.Context, name string, pos int64) error {
	if err := o.q.CreateCheckpoint(ctx, o.db, mysqldb.CreateCheckpointParams{Name: name, Position: pos}); err != nil {
		return fmt.Errorf("create checkpoint %q: %w", name, err)
	}
	return nil
}

// AdvanceCheckpoint moves a checkpoint from expected to pos, and reports
// false (changing nothing) when it was no longer at expected.
func (o *Ops) AdvanceCheckpoint(ctx context.Context, name string, expected, pos int64) (bool, error) {
	n, err := o.q.AdvanceCheckpoint(ctx, o.db, mysqldb.AdvanceCheckpointParams{Name: name, Expected: expected, Position: pos})
	if err != nil {
		return false, fmt.Errorf("advance checkpoint %q to %d: %w", name, pos, err)
	}
	return n == 1, nil
}

// SetCheckpoint sets a checkpoint unconditionally (rewind, skip ahead).
func (o *Ops) SetCheckpoint(ctx context.Context, name string, pos int64) error {
	if err := o.q.SetCheckpoint(ctx, o.db, mysqldb.SetCheckpointParams{Name: name, Position: pos}); err != nil {
		return fmt.Errorf("set checkpoint %q: %w", name, err)
	}
	return nil
}

// DeleteCheckpoint removes a checkpoint.
func (o *Ops) DeleteCheckpoint(ctx context.Context, name string) error {
	if err := o.q.DeleteCheckpoint(ctx, o.db, name); err != nil {
		return fmt.Errorf("delete checkpoint %q: %w", name, err)
	}
	return nil
}

// ListCheckpoints returns every checkpoint, in name order.
func (o *Ops) ListCheckpoints(ctx context.Context) ([]contract.CheckpointRow, error) {
	out := []contract.CheckpointRow{}
	rows, err := o.q.ListCheckpoints(ctx, o.db)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	for _, r := range rows {
		out = append(out, contract.CheckpointRow{Name: r.Name, Position: r.Position, UpdatedAt: r.UpdatedAt.UTC()})
	}
	return out, nil
}

// AcquireLease takes the lease on name for owner, or renews it when owner
// already holds it, for ttl from now by the database clock. It reports
// whether owner holds the lease afterwards. MySQL has no conditional upsert
// with RETURNING, so it takes three statements; run it inside a
// transaction so they see one another's row lock.
func (o *Ops) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	micros := ttl.Microseconds()
	if err := o.q.InsertLease(ctx, o.db, mysqldb.InsertLeaseParams{Name: name, Owner: owner, TtlMicros: micros}); err != nil {
		return false, fmt.Errorf("acquire lease %q: insert: %w", name, err)
	}
	if err := o.q.TakeLease(ctx, o.db, mysqldb.TakeLeaseParams{Name: name, Owner: owner, TtlMicros: micros}); err != nil {
		return false, fmt.Errorf("acquire lease %q: take: %w", name, err)
	}
	got, err := o.LeaseOwner(ctx, name)
	if err != nil {
		return false, err
	}
	return got == owner, nil
}

// LeaseOwner returns who holds an unexpired lease on name ("" for nobody).
func (o *Ops) LeaseOwner(ctx context.Context, name string) (string, error) {
	owner, err := o.q.LeaseOwner(ctx, o.db, name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease owner %q: %w", name, err)
	}
	return owner, nil
}

// ReleaseLease gives up owner's lease on name, so another process can take
// over at once; a lease held by someone else is left alone.
func (o *Ops) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := o.q.ReleaseLease(ctx, o.db, mysqldb.ReleaseLeaseParams{Name: name, Owner: owner}); err != nil {
		return fmt.Errorf("release lease %q: %w", name, err)
	}
	return nil
}
