package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
)

// Idempotency records of package orchestrator (table eventfold_commands,
// sql/mysql/00002_commands.sql). The orchestrator type-asserts Ops to its
// own interface; refs is opaque JSON to this package.

// LookupCommand returns the event references recorded for command id;
// found is false when the id is new.
func (o *Ops) LookupCommand(ctx context.Context, id string) (refs []byte, found bool, err error) {
	s, err := o.q.LookupCommand(ctx, o.db, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, interpretError(err)
	}
	return []byte(s), true, nil
}

// RecordCommand records command id with its event references. duplicate is
// true when the id was already recorded: the insert waited on the key for a
// concurrent inserter and its no-op ON DUPLICATE KEY UPDATE changed nothing
// (0 rows affected; the driver does not set CLIENT_FOUND_ROWS).
func (o *Ops) RecordCommand(ctx context.Context, id, commandType string, refs []byte) (duplicate bool, err error) {
	n, err := o.q.RecordCommand(ctx, o.db, mysqldb.RecordCommandParams{
		CommandID: id, CommandType: commandType, Events: string(refs), RecordedAt: time.Now().UTC(),
	})
	if err != nil {
		return false, interpretError(err)
	}
	return n == 0, nil
}

// PruneCommands deletes the records made before before.
func (o *Ops) PruneCommands(ctx context.Context, before time.Time) (int64, error) {
	n, err := o.q.PruneCommands(ctx, o.db, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune command records: %w", interpretError(err))
	}
	return n, nil
}
