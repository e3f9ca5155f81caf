package mssql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/eventfold/eventfold/internal/contract"
	"time"
)

// Checkpoints and leases of package listener (tables from
// sql/mssql/00003_subscriptions.sql), in hand-written T-SQL because sqlc has
// no SQL Server engine. The upserts use MERGE WITH (HOLDLOCK), which takes a
// key-range lock so that two concurrent callers cannot both insert a row.

// GetCheckpoint returns a subscription's checkpoint; found is false when it
// has none yet.
func (o *Ops) GetCheckpoint(ctx context.Context, name string) (pos int64, found bool, err error) {
	if err := exactIdentifier("subscription name", name); err != nil {
		return 0, false, err
	}
	err = o.db.QueryRowContext(ctx, `SELECT position FROM eventfold.checkpoints WHERE name = @p1`, name).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("get checkpoint %q: %w", name, interpretError(err))
	}
	return pos, true, nil
}

// CreateCheckpoint creates a checkpoint at pos unless one exists.
func (o *Ops) CreateCheckpoint(ctx context.Context, name string, pos int64) error {
	if err := exactIdentifier("subscription name", name); err != nil {
		return err
	}
	_, err := o.db.ExecContext(ctx, `
MERGE eventfold.checkpoints WITH (HOLDLOCK) AS t
USING (SELECT @p1 AS name, @p2 AS position) AS s ON t.name = s.name
WHEN NOT MATCHED THEN INSERT (name, position, updated_at) VALUES (s.name, s.position, SYSUTCDATETIME());`, name, pos)
	if err != nil {
		return fmt.Errorf("create checkpoint %q: %w", name, interpretError(err))
	}
	return nil
}

// AdvanceCheckpoint moves a checkpoint from expected to pos, and reports
// false (changing nothing) when it was no longer at expected.
func (o *Ops) AdvanceCheckpoint(ctx context.Context, name string, expected, pos int64) (bool, error) {
	if err := exactIdentifier("subscription name", name); err != nil {
		return false, err
	}
	res, err := o.db.ExecContext(ctx, `
UPDATE eventfold.checkpoints SET position = @p1, updated_at = SYSUTCDATETIME()
WHERE name = @p2 AND position = @p3`, pos, name, expected)
	if err != nil {
		return false, fmt.Errorf("advance checkpoint %q to %d: %w", name, pos, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("advance checkpoint %q: rows affected: %w", name, interpretError(err))
	}
	return n == 1, nil
}

// SetCheckpoint sets a checkpoint unconditionally (rewind, skip ahead).
func (o *Ops) SetCheckpoint(ctx context.Context, name string, pos int64) error {
	if err := exactIdentifier("subscription name", name); err != nil {
		return err
	}
	_, err := o.db.ExecContext(ctx, `
MERGE eventfold.checkpoints WITH (HOLDLOCK) AS t
USING (SELECT @p1 AS name, @p2 AS position) AS s ON t.name = s.name
WHEN MATCHED THEN UPDATE SET position = s.position, updated_at = SYSUTCDATETIME()
WHEN NOT MATCHED THEN INSERT (name, position, updated_at) VALUES (s.name, s.position, SYSUTCDATETIME());`, name, pos)
	if err != nil {
		return fmt.Errorf("set checkpoint %q: %w", name, interpretError(err))
	}
	return nil
}

// DeleteCheckpoint removes a checkpoint.
func (o *Ops) DeleteCheckpoint(ctx context.Context, name string) error {
	if err := exactIdentifier("subscription name", name); err != nil {
		return err
	}
	if _, err := o.db.ExecContext(ctx, `DELETE FROM eventfold.checkpoints WHERE name = @p1`, name); err != nil {
		return fmt.Errorf("delete checkpoint %q: %w", name, interpretError(err))
	}
	return nil
}

// ListCheckpoints returns every checkpoint, in name order.
func (o *Ops) ListCheckpoints(ctx context.Context) ([]contract.CheckpointRow, error) {
	out := []contract.CheckpointRow{}
	rows, err := o.db.QueryContext(ctx, `SELECT name, position, updated_at FROM eventfold.checkpoints ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var (
			name string
			pos  int64
			at   time.Time
		)
		if err := rows.Scan(&name, &pos, &at); err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", interpretError(err))
		}
		out = append(out, contract.CheckpointRow{Name: name, Position: pos, UpdatedAt: utc(at)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", interpretError(err))
	}
	return out, nil
}

// AcquireLease takes the lease on name for owner, or renews it when owner
// already holds it, for ttl from now by the database clock. It reports
// whether owner holds the lease afterwards.
func (o *Ops) AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if err := errors.Join(exactIdentifier("subscription name", name), exactIdentifier("lease owner", owner)); err != nil {
		return false, err
	}
	var got string
	err := o.db.QueryRowContext(ctx, `
MERGE eventfold.leases WITH (HOLDLOCK) AS t
USING (SELECT @p1 AS name, @p2 AS owner) AS s ON t.name = s.name
WHEN MATCHED AND (t.owner = s.owner OR t.expires_at < SYSUTCDATETIME()) THEN
    UPDATE SET acquired_at = CASE WHEN t.owner = s.owner THEN t.acquired_at ELSE SYSUTCDATETIME() END,
               owner = s.owner,
               expires_at = DATEADD(millisecond, @p3, SYSUTCDATETIME())
WHEN NOT MATCHED THEN
    INSERT (name, owner, expires_at, acquired_at)
    VALUES (s.name, s.owner, DATEADD(millisecond, @p3, SYSUTCDATETIME()), SYSUTCDATETIME())
OUTPUT inserted.owner;`, name, owner, ttl.Milliseconds()).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil // held by someone else and not expired
	}
	if err != nil {
		return false, fmt.Errorf("acquire lease %q: %w", name, interpretError(err))
	}
	return got == owner, nil
}

// LeaseOwner returns who holds an unexpired lease on name ("" for nobody).
// A name ending in a space has no lease (none can be taken under it); it
// is answered without a query, which would find the lease of the name
// without the space. Listing a checkpoint stored under such a name before
// migration 00005 thus still works.
func (o *Ops) LeaseOwner(ctx context.Context, name string) (string, error) {
	if exactIdentifier("subscription name", name) != nil {
		return "", nil
	}
	var owner string
	err := o.db.QueryRowContext(ctx, `SELECT owner FROM eventfold.leases WHERE name = @p1 AND expires_at >= SYSUTCDATETIME()`, name).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease owner %q: %w", name, interpretError(err))
	}
	return owner, nil
}

// ReleaseLease gives up owner's lease on name, so another process can take
// over at once; a lease held by someone else is left alone.
func (o *Ops) ReleaseLease(ctx context.Context, name, owner string) error {
	if err := errors.Join(exactIdentifier("subscription name", name), exactIdentifier("lease owner", owner)); err != nil {
		return err
	}
	if _, err := o.db.ExecContext(ctx, `DELETE FROM eventfold.leases WHERE name = @p1 AND owner = @p2`, name, owner); err != nil {
		return fmt.Errorf("release lease %q: %w", name, interpretError(err))
	}
	return nil
}
