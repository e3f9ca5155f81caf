package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold/internal/dbsqlc/postgresdb"
)

// Idempotency records of package orchestrator (table eventfold.commands,
// sql/postgres/00002_commands.sql, scoped since 00007_command_scope.sql).
// The orchestrator type-asserts Ops to its own interface; refs is opaque
// JSON to this package.

// LookupCommand returns the record of command id in scope: the command
// name, payload hash and event references; found is false when the id is
// new in that scope.
func (o *Ops) LookupCommand(ctx context.Context, scope, id string) (commandType, payloadHash string, refs []byte, found bool, err error) {
	row, err := o.q.LookupCommand(ctx, o.db, postgresdb.LookupCommandParams{Scope: scope, CommandID: id})
	if isNoRows(err) {
		return "", "", nil, false, nil
	}
	if err != nil {
		return "", "", nil, false, interpretError(err, "", -1)
	}
	return row.CommandType, row.PayloadHash, row.Events, true, nil
}

// RecordCommand records command id in scope with its command name, payload
// hash and event references. duplicate is true when the id was already
// recorded in scope (ON CONFLICT DO NOTHING waited for a
// concurrent inserter and inserted nothing); the transaction stays usable.
func (o *Ops) RecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) (duplicate bool, err error) {
	n, err := o.q.RecordCommand(ctx, o.db, postgresdb.RecordCommandParams{Scope: scope, CommandID: id, CommandType: commandType, PayloadHash: payloadHash, Events: refs})
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
