package mssql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/internal/dialect"
)

// Commit markers of package orchestrator and the store identity
// (sql/mssql/00009_commit_markers_identity.sql), in hand-written T-SQL
// (sqlc has no SQL Server engine). Untested here: no SQL Server runs on the
// development machines.

// WriteCommitMarker records marker id inside the transaction o runs on.
func (o *Ops) WriteCommitMarker(ctx context.Context, id string) error {
	if _, err := o.db.ExecContext(ctx, `INSERT INTO eventfold.commit_markers (marker_id) VALUES (@p1)`, id); err != nil {
		return fmt.Errorf("write commit marker: %w", interpretError(err))
	}
	return nil
}

// ClaimCommitMarker tells whether the transaction that wrote marker id
// committed. Run on the pool, after that transaction's COMMIT failed: the
// existence check takes UPDLOCK, HOLDLOCK, so it waits while the marked
// transaction still holds the key (under RCSI a plain read would see the
// last committed version and not wait), then inserts the marker itself so
// the answer is final either way.
func (o *Ops) ClaimCommitMarker(ctx context.Context, id string) (committed bool, err error) {
	res, err := o.db.ExecContext(ctx, `
INSERT INTO eventfold.commit_markers (marker_id)
SELECT @p1
WHERE NOT EXISTS (SELECT 1 FROM eventfold.commit_markers WITH (UPDLOCK, HOLDLOCK) WHERE marker_id = @p1);`, id)
	if err != nil {
		return false, fmt.Errorf("look up commit marker %s: %w", id, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("look up commit marker %s: rows affected: %w", id, err)
	}
	return n == 0, nil
}

// PruneCommitMarkers deletes the markers made before before (marker ids
// are UUIDv7 text in a BIN2 column, so the primary key finds them).
func (o *Ops) PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error) {
	res, err := o.db.ExecContext(ctx, `DELETE FROM eventfold.commit_markers WHERE marker_id < @p1`, dialect.MarkerBound(before))
	if err != nil {
		return 0, fmt.Errorf("prune commit markers: %w", interpretError(err))
	}
	return res.RowsAffected()
}

// StoreIdentity returns the store's random identity, made by migration
// 00009; "" when that migration is not applied.
func (o *Ops) StoreIdentity(ctx context.Context) (string, error) {
	var id string
	err := o.db.QueryRowContext(ctx, `SELECT store_id FROM eventfold.store_identity WHERE id = 1`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	for _, e := range sqlErrors(err) {
		if e.Number == 208 { // invalid object name: migration 00009 not applied
			return "", nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("read store identity: %w", interpretError(err))
	}
	return id, nil
}
