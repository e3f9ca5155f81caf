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
// sql/mssql/00002_commands.sql), in hand-written T-SQL because sqlc has no
// SQL Server engine. The orchestrator type-asserts Ops to its own
// interface; refs is opaque JSON to this package.

// LookupCommand returns the event references recorded for command id;
// found is false when the id is new.
func (o *Ops) LookupCommand(ctx context.Context, id string) (refs []byte, found bool, err error) {
	if err := exactIdentifier("command id", id); err != nil {
		return nil, false, err
	}
	var s string
	err = o.db.QueryRowContext(ctx, `SELECT events FROM eventfold.commands WHERE command_id = @p1`, id).Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("look up command %q: %w", id, interpretError(err))
	}
	return []byte(s), true, nil
}

// RecordCommand records command id with its event references. duplicate is
// true when the id was already recorded. UPDLOCK, HOLDLOCK on the existence
// check takes a key-range lock, so a concurrent duplicate waits for the
// first transaction and then inserts nothing (rather than failing with a
// primary-key violation).
func (o *Ops) RecordCommand(ctx context.Context, id, commandType string, refs []byte) (duplicate bool, err error) {
	if err := exactIdentifier("command id", id); err != nil {
		return false, err
	}
	res, err := o.db.ExecContext(ctx, `
INSERT INTO eventfold.commands (command_id, command_type, events)
SELECT @p1, @p2, @p3
WHERE NOT EXISTS (SELECT 1 FROM eventfold.commands WITH (UPDLOCK, HOLDLOCK) WHERE command_id = @p1);`,
		id, commandType, mssql.NVarCharMax(refs))
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
