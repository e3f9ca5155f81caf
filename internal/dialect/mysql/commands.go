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
// sql/mysql/00002_commands.sql, scoped since 00007_command_scope.sql). The
// orchestrator type-asserts Ops to its own interface; refs is opaque JSON to
// this package. The scope column is VARBINARY (byte-exact on MySQL 8 and
// MariaDB), so it travels as UTF-8 bytes.

// LookupCommand returns the record of command id in scope: the command
// name, payload hash and event references; found is false when the id is
// new in that scope.
func (o *Ops) LookupCommand(ctx context.Context, scope, id string) (commandType, payloadHash string, refs []byte, found bool, err error) {
	row, err := o.q.LookupCommand(ctx, o.db, mysqldb.LookupCommandParams{Scope: scopeBytes(scope), CommandID: id})
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil, false, nil
	}
	if err != nil {
		return "", "", nil, false, interpretError(err)
	}
	return row.CommandType, row.PayloadHash, []byte(row.Events), true, nil
}

// RecordCommand records command id in scope with its command name, payload
// hash and event references. duplicate is true when the id was already
// recorded in scope: the insert waited on the key for a
// concurrent inserter and its no-op ON DUPLICATE KEY UPDATE changed nothing
// (0 rows affected; the driver does not set CLIENT_FOUND_ROWS).
func (o *Ops) RecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) (duplicate bool, err error) {
	n, err := o.q.RecordCommand(ctx, o.db, mysqldb.RecordCommandParams{
		Scope: scopeBytes(scope), CommandID: id, CommandType: commandType, PayloadHash: payloadHash,
		Events: string(refs), RecordedAt: time.Now().UTC(),
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

// scopeBytes is scope as VARBINARY: never a nil slice, which the driver
// would send as NULL.
func scopeBytes(scope string) []byte {
	if scope == "" {
		return []byte{}
	}
	return []byte(scope)
}
