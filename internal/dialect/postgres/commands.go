package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/eventfold/eventfold/internal/contract"

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
	n, err := o.q.RecordCommand(ctx, o.db, postgresdb.RecordCommandParams{Scope: scope, CommandID: id, CommandType: commandType, PayloadHash: payloadHash, Events: string(refs)})
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

// CommitQueue is a transaction that holds writes back and sends them with
// its COMMIT in one pipeline (pgxdriver's transactions). When a queued
// write fails, COMMIT is not run and Commit returns a
// *contract.QueuedWriteError holding onError's mapping of the error.
type CommitQueue interface {
	QueueBeforeCommit(query string, args []any, onError func(error) error)
}

// DeferQueue is a transaction holding deferred writes back (pgxdriver's,
// see contract.WriteDeferrer). Every statement sends them first, except
// ROLLBACK TO SAVEPOINT: the savepoint was set by a statement, so what is
// deferred came after it and is undone anyway, and is discarded instead
// (a deferred write that failed too: the rollback clears the error).
type DeferQueue interface {
	DiscardDeferred()
}

// queueDB is a postgresdb.DBTX that queues the statements of the generated
// queries on a CommitQueue instead of running them, so that the SQL stays
// in queries/. Only Exec is used (statements without results).
type queueDB struct {
	q       CommitQueue
	onError func(error) error
}

func (d queueDB) Exec(_ context.Context, query string, args ...any) (pgconn.CommandTag, error) {
	d.q.QueueBeforeCommit(query, args, d.onError)
	return pgconn.CommandTag{}, nil
}

func (d queueDB) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("eventfold: internal: a query cannot be queued with COMMIT")
}

func (d queueDB) QueryRow(context.Context, string, ...any) pgx.Row {
	return errRow{errors.New("eventfold: internal: a query cannot be queued with COMMIT")}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queue returns the CommitQueue o runs on, if any.
func (o *Ops) queue() (CommitQueue, bool) {
	q, ok := o.db.(CommitQueue)
	return q, ok
}

var _ contract.CommitPipeline = (*Ops)(nil)

// QueueRecordCommand implements contract.CommitPipeline: the record is
// inserted with COMMIT, without ON CONFLICT, so that a duplicate aborts the
// transaction (contract.ErrDuplicateCommand) and the pipelined COMMIT does
// not run.
func (o *Ops) QueueRecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) error {
	q, ok := o.queue()
	if !ok {
		return contract.ErrUnsupported
	}
	db := queueDB{q: q, onError: func(err error) error {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation && pgErr.ConstraintName == constraintCommandKey {
			return fmt.Errorf("%w: %w", contract.ErrDuplicateCommand, err)
		}
		return interpretError(err, "", -1)
	}}
	return o.q.RecordCommandStrict(ctx, db, postgresdb.RecordCommandStrictParams{Scope: scope, CommandID: id, CommandType: commandType, PayloadHash: payloadHash, Events: string(refs)})
}

// QueueCommitMarker implements contract.CommitPipeline.
func (o *Ops) QueueCommitMarker(ctx context.Context, id string) error {
	q, ok := o.queue()
	if !ok {
		return contract.ErrUnsupported
	}
	u, err := markerUUID(id)
	if err != nil {
		return err
	}
	db := queueDB{q: q, onError: func(err error) error {
		return fmt.Errorf("write commit marker: %w", interpretError(err, "", -1))
	}}
	return o.q.WriteCommitMarker(ctx, db, u)
}
