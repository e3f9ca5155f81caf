package listener

import (
	"context"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// subscriptionOps is the part of the store/dialect contract the listener
// uses: checkpoints and leases (migration 00003_subscriptions).
type subscriptionOps = contract.Checkpoints

// writeOps runs fn on the subscription operations inside a short
// transaction of its own. Going through a transaction rather than the pool
// matters on SQLite, where the driver serialises writers in-process and an
// autocommit write beside it could meet SQLITE_BUSY. On a database without
// eventfold's schema the error is ErrSchemaNotInstalled.
func writeOps(ctx context.Context, log eventfold.Log, fn func(so subscriptionOps) error) error {
	return log.SchemaError(ctx, log.InOpsTx(ctx, func(ops eventfold.Ops) error { return fn(ops) }))
}

// readOps returns the subscription operations on the pool, whose reads
// fail with ErrSchemaNotInstalled on a database without eventfold's
// schema. The error is kept for the callers' shape; the contract is
// checked at compile time.
func readOps(log eventfold.Log) (subscriptionOps, error) {
	return schemaCheckedOps{Checkpoints: log.Ops(), log: log}, nil
}

// schemaCheckedOps passes the errors of the reads through
// Log.SchemaError; the writes go through writeOps.
type schemaCheckedOps struct {
	contract.Checkpoints
	log eventfold.Log
}

func (o schemaCheckedOps) GetCheckpoint(ctx context.Context, name string) (int64, bool, error) {
	pos, found, err := o.Checkpoints.GetCheckpoint(ctx, name)
	return pos, found, o.log.SchemaError(ctx, err)
}

func (o schemaCheckedOps) ListCheckpoints(ctx context.Context) ([]contract.CheckpointRow, error) {
	rows, err := o.Checkpoints.ListCheckpoints(ctx)
	return rows, o.log.SchemaError(ctx, err)
}

func (o schemaCheckedOps) LeaseOwner(ctx context.Context, name string) (string, error) {
	owner, err := o.Checkpoints.LeaseOwner(ctx, name)
	return owner, o.log.SchemaError(ctx, err)
}
