package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold/internal/dbsqlc/pgdb"
)

// Idempotency records of package orchestrator (table eventfold.commands,
// sql/postgres/00002_commands.sql). The orchestrator type-asserts Ops to
// its own interface; refs is opaque JSON to this package.

// LookupCommand returns the event references recorded for command id;
// found is false when the id is new.
func (o *Ops) LookupCommand(ctx context.Context, id string) (refs []byte, found bool, err error) {
	refs, err = o.q.LookupCommand(ctx, o.db, id)
	if isNoRows(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, interpretError(err, "", -1)
	}
	return refs, true, nil
}

// RecordCommand records command id with its event references. duplicate is
// true when the id was already recorded (ON CONFLICT DO NOTHING waited for a
// concurrent inserter and inserted nothing); the transaction stays usable.
func (o *Ops) RecordCommand(ctx context.Context, id, commandType string, refs []byte) (duplicate bool, err error) {
	n, err := o.q.RecordCommand(ctx, o.db, pgdb.RecordCommandParams{CommandID: id, CommandType: commandType, Events: refs})
	if err != nil {
		return false, interpretError(err, "", -1)
	}
	return n == 0, nil
}

// PruneCommands deletes the records made before before.
func (o *Ops) PruneCommands(ctx context.Context, before time.Time) (int64, error) {
	n, err := o.q.PruneCommands(ctx, o.db, pgtype.Timestamptz{Time: before, Valid: true})
	if err != nil {
		return 0, fmt.Errorf("prune command records: %w", interpretError(err, "", -1))
	}
	return n, nil
}
