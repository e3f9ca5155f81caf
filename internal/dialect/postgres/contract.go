package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dialect"
)

// The parts of the contract (internal/contract) that are about the
// database rather than the tables: capabilities, error classification,
// savepoints and LISTEN/NOTIFY.

// Capabilities implements contract.Ops: PostgreSQL has every optional
// part; the commit pipeline only on a transaction that queues writes
// (pgxdriver's).
func (o *Ops) Capabilities() contract.Capabilities {
	_, pipeline := o.queue()
	return contract.Capabilities{CommitMarkers: true, PositionCheck: true, Notify: true, MaxSavepoints: maxSavepoints, CommitPipeline: pipeline, HeadLags: true}
}

// maxSavepoints bounds the savepoints of one transaction, below the
// 64-entry subtransaction cache.
const maxSavepoints = 60

// IsTransient tells whether err is a PostgreSQL error a retry of the whole
// transaction may cure.
func IsTransient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case codeSerializationFailure, codeDeadlockDetected, codeLockNotAvailable, codeTooManyConnections, codeCannotConnectNow:
		return true
	}
	return false
}

// ClassifyError implements contract.Errors.
func (o *Ops) ClassifyError(err error) error { return dialect.Classify(err, IsTransient) }

// ServerReported implements contract.Errors: the server's errors carry a
// SQLSTATE, through pgx or database/sql alike.
func (o *Ops) ServerReported(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr)
}

// UndefinedObject implements contract.Errors: undefined_table (42P01),
// undefined_function (42883), invalid_schema_name (3F000), undefined_column
// (42703).
func (o *Ops) UndefinedObject(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42883" || pe.Code == "3F000" || pe.Code == "42703")
}

// PermissionDenied implements contract.Errors: insufficient_privilege
// (42501), for a table, schema, sequence or function alike.
func (o *Ops) PermissionDenied(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
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
	if d, ok := o.db.(DeferQueue); ok {
		d.DiscardDeferred()
	}
	return o.Exec(ctx, q)
}

// Notify implements contract.Notifications with pg_notify, which takes
// the channel as a value (no identifier quoting needed).
func (o *Ops) Notify(ctx context.Context, channel, payload string) error {
	return o.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload)
}

// EnableNotifyTrigger attaches eventfold.notify_events (migration 00003)
// to eventfold.events, once.
func (o *Ops) EnableNotifyTrigger(ctx context.Context) error {
	err := o.Exec(ctx, `DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'events_notify' AND tgrelid = 'eventfold.events'::regclass) THEN
    CREATE TRIGGER events_notify AFTER INSERT ON eventfold.events
      FOR EACH STATEMENT EXECUTE FUNCTION eventfold.notify_events();
  END IF;
END $$`)
	if err != nil {
		return fmt.Errorf("enable notify trigger: %w", err)
	}
	return nil
}

// DisableNotifyTrigger detaches the trigger EnableNotifyTrigger attached.
func (o *Ops) DisableNotifyTrigger(ctx context.Context) error {
	if err := o.Exec(ctx, `DROP TRIGGER IF EXISTS events_notify ON eventfold.events`); err != nil {
		return fmt.Errorf("disable notify trigger: %w", err)
	}
	return nil
}
