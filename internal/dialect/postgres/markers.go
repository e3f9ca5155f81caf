package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold/internal/dialect"
)

// Commit markers of package orchestrator and the store identity
// (sql/postgres/00009_commit_markers_identity.sql). The orchestrator and
// esctl type-assert Ops to their own interfaces; plain values only.

func markerUUID(id string) (pgtype.UUID, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return pgtype.UUID{}, fmt.Errorf("commit marker %q is not a UUID: %w", id, err)
	}
	return pgtype.UUID{Bytes: u, Valid: true}, nil
}

// WriteCommitMarker records marker id inside the transaction o runs on.
func (o *Ops) WriteCommitMarker(ctx context.Context, id string) error {
	u, err := markerUUID(id)
	if err != nil {
		return err
	}
	if err := o.q.WriteCommitMarker(ctx, o.db, u); err != nil {
		return fmt.Errorf("write commit marker: %w", interpretError(err, "", -1))
	}
	return nil
}

// ClaimCommitMarker tells whether the transaction that wrote marker id
// committed. Run on the pool, after that transaction's COMMIT failed: it
// inserts the marker itself, waiting on the key while the marked
// transaction still runs, so the answer is final either way (the marked
// transaction can no longer commit once the claim is in).
func (o *Ops) ClaimCommitMarker(ctx context.Context, id string) (committed bool, err error) {
	u, err := markerUUID(id)
	if err != nil {
		return false, err
	}
	n, err := o.q.ClaimCommitMarker(ctx, o.db, u)
	if err != nil {
		return false, fmt.Errorf("look up commit marker %s: %w", id, interpretError(err, "", -1))
	}
	return n == 0, nil
}

// PruneCommitMarkers deletes the markers made before before (marker ids
// are UUIDv7, so the primary key finds them).
func (o *Ops) PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error) {
	bound, err := markerUUID(dialect.MarkerBound(before))
	if err != nil {
		return 0, err
	}
	n, err := o.q.PruneCommitMarkers(ctx, o.db, bound)
	if err != nil {
		return 0, fmt.Errorf("prune commit markers: %w", interpretError(err, "", -1))
	}
	return n, nil
}

// StoreIdentity returns the store's random identity, made by migration
// 00009; "" when that migration is not applied.
func (o *Ops) StoreIdentity(ctx context.Context) (string, error) {
	id, err := o.q.StoreIdentity(ctx, o.db)
	if errors.Is(err, pgx.ErrNoRows) || isUndefinedTable(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read store identity: %w", interpretError(err, "", -1))
	}
	return id, nil
}
