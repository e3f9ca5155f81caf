package mssql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	mssql "github.com/microsoft/go-mssqldb"
)

// Idempotency records of package orchestrator (table eventfold.commands,
// sql/mssql/00002_commands.sql, scoped since 00007_command_scope.sql), in
// hand-written T-SQL because sqlc has no SQL Server engine. The
// orchestrator type-asserts Ops to its own interface; refs is opaque JSON
// to this package. The scope column is VARBINARY, which compares byte for
// byte (NVARCHAR '=' ignores trailing spaces), so it travels as UTF-8 bytes.

// LookupCommand returns the record of command id in scope: the command
// name, payload hash and event references; found is false when the id is
// new in that scope.
func (o *Ops) LookupCommand(ctx context.Context, scope, id string) (commandType, payloadHash string, refs []byte, found bool, err error) {
	if err := exactIdentifier("command id", id); err != nil {
		return "", "", nil, false, err
	}
	var s string
	err = o.db.QueryRowContext(ctx, `
SELECT command_type, payload_hash, events FROM eventfold.commands
WHERE scope = @p1 AND command_id = @p2`, scopeBytes(scope), id).Scan(&commandType, &payloadHash, &s)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil, false, nil
	}
	if err != nil {
		return "", "", nil, false, fmt.Errorf("look up command %q: %w", id, interpretError(err))
	}
	return commandType, payloadHash, []byte(s), true, nil
}

// RecordCommand records command id in scope with its command name, payload
// hash and event references. duplicate is true when the id was already
// recorded in scope. UPDLOCK, HOLDLOCK on the existence
// check takes a key-range lock, so a concurrent duplicate waits for the
// first transaction and then inserts nothing (rather than failing with a
// primary-key violation).
func (o *Ops) RecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) (duplicate bool, err error) {
	if err := exactIdentifier("command id", id); err != nil {
		return false, err
	}
	res, err := o.db.ExecContext(ctx, `
INSERT INTO eventfold.commands (scope, command_id, command_type, payload_hash, events)
SELECT @p1, @p2, @p3, @p4, @p5
WHERE NOT EXISTS (SELECT 1 FROM eventfold.commands WITH (UPDLOCK, HOLDLOCK) WHERE scope = @p1 AND command_id = @p2);`,
		scopeBytes(scope), id, commandType, payloadHash, mssql.NVarCharMax(refs))
	if err != nil {
		return false, fmt.Errorf("record command %q: %w", id, interpretError(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record command %q: rows affected: %w", id, interpretError(err))
	}
	return n == 0, nil
}

// PruneCommands deletes the records made before before. go-mssqldb sends
// a time.Time as datetimeoffset; compared with the DATETIME2 column as is,
// the column would be converted row by row and the index on recorded_at
// could not be sought. The CAST converts the parameter instead (it is in
// UTC, so dropping its offset keeps the instant).
func (o *Ops) PruneCommands(ctx context.Context, before time.Time) (int64, error) {
	res, err := o.db.ExecContext(ctx, `DELETE FROM eventfold.commands WHERE recorded_at < CAST(@p1 AS DATETIME2(6))`, before.UTC())
	if err != nil {
		return 0, fmt.Errorf("prune command records: %w", interpretError(err))
	}
	return res.RowsAffected()
}

// scopeBytes is scope as VARBINARY: never a nil slice, which the driver
// would send as NULL.
func scopeBytes(scope string) []byte {
	if scope == "" {
		return []byte{}
	}
	return []byte(scope)
}
