package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Commit markers of package orchestrator and the store identity
// (sql/mysql/00009_commit_markers_identity.sql). The orchestrator and esctl
// type-assert Ops to their own interfaces; plain values only.

const errNoSuchTable = 1146 // ER_NO_SUCH_TABLE

// WriteCommitMarker records marker id inside the transaction o runs on.
func (o *Ops) WriteCommitMarker(ctx context.Context, id string) error {
	err := o.q.WriteCommitMarker(ctx, o.db, mysqldb.WriteCommitMarkerParams{MarkerID: id, RecordedAt: time.Now().UTC()})
	if err != nil {
		return fmt.Errorf("write commit marker: %w", interpretError(err))
	}
	return nil
}

// ClaimCommitMarker tells whether the transaction that wrote marker id
// committed. Run on the pool, after that transaction's COMMIT failed: it
// inserts the marker itself, waiting on the key's lock while the marked
// transaction still holds it, so the answer is final either way.
func (o *Ops) ClaimCommitMarker(ctx context.Context, id string) (committed bool, err error) {
	n, err := o.q.ClaimCommitMarker(ctx, o.db, mysqldb.ClaimCommitMarkerParams{MarkerID: id, RecordedAt: time.Now().UTC()})
	if err != nil {
		return false, fmt.Errorf("look up commit marker %s: %w", id, interpretError(err))
	}
	return n == 0, nil
}

// PruneCommitMarkers deletes the markers made before before (marker ids
// are UUIDv7 text, so the primary key finds them).
func (o *Ops) PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error) {
	n, err := o.q.PruneCommitMarkers(ctx, o.db, dialect.MarkerBound(before))
	if err != nil {
		return 0, fmt.Errorf("prune commit markers: %w", interpretError(err))
	}
	return n, nil
}

// StoreIdentity returns the store's random identity, made by migration
// 00009; "" when that migration is not applied.
func (o *Ops) StoreIdentity(ctx context.Context) (string, error) {
	id, err := o.q.StoreIdentity(ctx, o.db)
	var me *mysql.MySQLError
	if errors.Is(err, sql.ErrNoRows) || (errors.As(err, &me) && me.Number == errNoSuchTable) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read store identity: %w", interpretError(err))
	}
	return id, nil
}
