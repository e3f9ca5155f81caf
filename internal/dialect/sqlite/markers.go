package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/eventfold/eventfold"
)

// The store identity (sql/sqlite/00009_commit_markers_identity.sql).
//
// SQLite has no commit markers: the engine runs inside the process, so no
// connection can lose a COMMIT's reply, and a failed COMMIT is reported by
// the engine with a known outcome (not committed). Ops therefore does not
// implement the orchestrator's marker interface, and the orchestrator
// writes none here.

// StoreIdentity returns the store's random identity, made by migration
// 00009; "" when that migration is not applied.
func (o *Ops) StoreIdentity(ctx context.Context) (string, error) {
	id, err := o.q.StoreIdentity(ctx, o.db)
	if errors.Is(err, sql.ErrNoRows) || (err != nil && strings.Contains(err.Error(), "no such table")) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read store identity: %w", interpretError(err, "", eventfold.Any))
	}
	return id, nil
}
