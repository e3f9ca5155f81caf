package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// The parts of the contract (internal/contract) that are about the
// database rather than the tables: capabilities, error classification,
// savepoints and (absent here) LISTEN/NOTIFY and position checks.

// Capabilities implements contract.Ops.
func (o *Ops) Capabilities() contract.Capabilities {
	return contract.Capabilities{CommitMarkers: false, DensePositions: true, SingleWriter: true}
}

// CheckPositions implements contract.Positions: positions here are a
// counter stored with the data, so they survive any move.
func (o *Ops) CheckPositions(ctx context.Context, repair bool) (eventfold.PositionCheck, error) {
	return eventfold.PositionCheck{Message: fmt.Sprintf("positions ok: %s positions are stored with the data", eventfold.SQLite)}, nil
}

// Notify implements contract.Notifications: unsupported.
func (o *Ops) Notify(ctx context.Context, channel, payload string) error {
	return dialect.Unsupported("NOTIFY", eventfold.SQLite)
}

// EnableNotifyTrigger implements contract.Notifications: unsupported.
func (o *Ops) EnableNotifyTrigger(ctx context.Context) error {
	return dialect.Unsupported("notify trigger", eventfold.SQLite)
}

// DisableNotifyTrigger implements contract.Notifications: there is no
// trigger to detach, which is what was asked.
func (o *Ops) DisableNotifyTrigger(ctx context.Context) error { return nil }

// IsTransient tells whether err is SQLITE_BUSY or SQLITE_LOCKED: another
// connection held the lock for longer than the busy timeout.
func IsTransient(err error) bool {
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return false
	}
	code := coded.Code() & 0xff
	return code == codeBusy || code == codeLocked
}

// ClassifyError implements contract.Errors.
func (o *Ops) ClassifyError(err error) error { return dialect.Classify(err, IsTransient) }

// ServerReported implements contract.Errors: an error the engine reported
// carries a result code (the engine runs in the process; there is no
// connection to lose).
func (o *Ops) ServerReported(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded)
}

// UndefinedObject implements contract.Errors. SQLite reports a missing
// table with the generic SQLITE_ERROR code; only its message tells.
func (o *Ops) UndefinedObject(err error) bool {
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "no such table") || strings.Contains(msg, "no such function") || strings.Contains(msg, "no such column")
}

// PermissionDenied implements contract.Errors: SQLite has no accounts or
// grants (a file the process may not open fails at Open), so no error
// says so.
func (o *Ops) PermissionDenied(error) bool { return false }

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

// WriteCommitMarker implements contract.CommitMarkers: unsupported (see
// Capabilities; a failed COMMIT here has a known outcome).
func (o *Ops) WriteCommitMarker(ctx context.Context, id string) error {
	return dialect.Unsupported("commit markers", eventfold.SQLite)
}

// ClaimCommitMarker implements contract.CommitMarkers: unsupported.
func (o *Ops) ClaimCommitMarker(ctx context.Context, id string) (bool, error) {
	return false, dialect.Unsupported("commit markers", eventfold.SQLite)
}

// PruneCommitMarkers implements contract.CommitMarkers: there are none,
// so none is deleted.
func (o *Ops) PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error) {
	return 0, nil
}
