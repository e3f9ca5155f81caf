package mssql

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// The parts of the contract (internal/contract) that are about the
// database rather than the tables: capabilities, error classification,
// savepoints and (absent here) LISTEN/NOTIFY and position checks.

// Capabilities implements contract.Ops.
func (o *Ops) Capabilities() contract.Capabilities {
	return contract.Capabilities{CommitMarkers: true, DensePositions: true}
}

// CheckPositions implements contract.Positions: positions here are a
// counter stored with the data, so they survive any move.
func (o *Ops) CheckPositions(ctx context.Context, repair bool) (eventfold.PositionCheck, error) {
	return eventfold.PositionCheck{Message: fmt.Sprintf("positions ok: %s positions are stored with the data", eventfold.SQLServer)}, nil
}

// Notify implements contract.Notifications: unsupported.
func (o *Ops) Notify(ctx context.Context, channel, payload string) error {
	return dialect.Unsupported("NOTIFY", eventfold.SQLServer)
}

// EnableNotifyTrigger implements contract.Notifications: unsupported.
func (o *Ops) EnableNotifyTrigger(ctx context.Context) error {
	return dialect.Unsupported("notify trigger", eventfold.SQLServer)
}

// DisableNotifyTrigger implements contract.Notifications: there is no
// trigger to detach, which is what was asked.
func (o *Ops) DisableNotifyTrigger(ctx context.Context) error { return nil }

// ClassifyError implements contract.Errors.
func (o *Ops) ClassifyError(err error) error { return Classify(err) }

// ServerReported implements contract.Errors: the server's errors carry an
// error number.
func (o *Ops) ServerReported(err error) bool { return len(sqlErrors(err)) > 0 }

// UndefinedObject implements contract.Errors: 208 (invalid object name),
// 2812 (could not find stored procedure), 4121 (cannot find a function),
// 207 (invalid column name).
func (o *Ops) UndefinedObject(err error) bool {
	for _, e := range sqlErrors(err) {
		if e.Number == 208 || e.Number == 2812 || e.Number == 4121 || e.Number == 207 {
			return true
		}
	}
	return false
}

// PermissionDenied implements contract.Errors: 229 (permission denied on
// an object), 230 (on a column), 262 (in the database). Not exercised: no
// SQL Server runs where this was written.
func (o *Ops) PermissionDenied(err error) bool {
	for _, e := range sqlErrors(err) {
		if e.Number == 229 || e.Number == 230 || e.Number == 262 {
			return true
		}
	}
	return false
}

// Savepoint implements contract.Savepoints (SAVE TRANSACTION: SQL
// Server's savepoints).
func (o *Ops) Savepoint(ctx context.Context, name string) error {
	q, err := dialect.SavepointStatement("SAVE TRANSACTION", name)
	if err != nil {
		return err
	}
	return o.Exec(ctx, q)
}

// RollbackToSavepoint implements contract.Savepoints.
func (o *Ops) RollbackToSavepoint(ctx context.Context, name string) error {
	q, err := dialect.SavepointStatement("ROLLBACK TRANSACTION", name)
	if err != nil {
		return err
	}
	return o.Exec(ctx, q)
}
