package mysql

import (
	"context"
	"errors"

	"github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// The parts of the contract (internal/contract) that are about the
// database rather than the tables: capabilities, error classification,
// savepoints and (absent here) LISTEN/NOTIFY. Position checks: positions.go.

// Capabilities implements contract.Ops.
func (o *Ops) Capabilities() contract.Capabilities {
	return contract.Capabilities{CommitMarkers: true, PositionCheck: true, HeadLags: true}
}

// Notify implements contract.Notifications: unsupported.
func (o *Ops) Notify(ctx context.Context, channel, payload string) error {
	return dialect.Unsupported("NOTIFY", eventfold.MySQL)
}

// EnableNotifyTrigger implements contract.Notifications: unsupported.
func (o *Ops) EnableNotifyTrigger(ctx context.Context) error {
	return dialect.Unsupported("notify trigger", eventfold.MySQL)
}

// DisableNotifyTrigger implements contract.Notifications: there is no
// trigger to detach, which is what was asked.
func (o *Ops) DisableNotifyTrigger(ctx context.Context) error { return nil }

// IsTransient tells whether err is a MySQL/MariaDB error a retry of the
// whole transaction may cure.
func IsTransient(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case errDeadlock, errLockWaitTimeout, errRecordChanged:
		return true
	}
	return connectionLimit(me)
}

// ClassifyError implements contract.Errors.
func (o *Ops) ClassifyError(err error) error { return dialect.Classify(err, IsTransient) }

// ServerReported implements contract.Errors: the server's errors carry an
// error number.
func (o *Ops) ServerReported(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me)
}

// UndefinedObject implements contract.Errors: ER_NO_SUCH_TABLE (1146),
// ER_SP_DOES_NOT_EXIST (1305: procedure or function), ER_BAD_FIELD_ERROR
// (1054: unknown column).
func (o *Ops) UndefinedObject(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1146 || me.Number == 1305 || me.Number == 1054)
}

// PermissionDenied implements contract.Errors: ER_DBACCESS_DENIED_ERROR
// (1044), ER_TABLEACCESS_DENIED_ERROR (1142), ER_COLUMNACCESS_DENIED_ERROR
// (1143), ER_SPECIFIC_ACCESS_DENIED_ERROR (1227), ER_PROCACCESS_DENIED_ERROR
// (1370).
func (o *Ops) PermissionDenied(err error) bool {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	switch me.Number {
	case 1044, errTableAccessDenied, 1143, 1227, 1370:
		return true
	}
	return false
}

// Savepoint implements contract.Savepoints.
func (o *Ops) Savepoint(ctx context.Context, name string) error {
	q, err := dialect.SavepointStatement("SAVEPOINT", name)
	if err != nil {
		return err
	}
	return o.Exec(ctx, q)
}

// RollbackToSavepoint implements contract.Savepoints.
func (o *Ops) RollbackToSavepoint(ctx context.Context, name string) error {
	q, err := dialect.SavepointStatement("ROLLBACK TO SAVEPOINT", name)
	if err != nil {
		return err
	}
	return o.Exec(ctx, q)
}
