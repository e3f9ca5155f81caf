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
// autocommit write beside it could meet SQLITE_BUSY.
func writeOps(ctx context.Context, log eventfold.Log, fn func(so subscriptionOps) error) error {
	return log.InOpsTx(ctx, func(ops eventfold.Ops) error { return fn(ops) })
}

// readOps returns the subscription operations on the pool. The error is
// kept for the callers' shape; the contract is checked at compile time.
func readOps(log eventfold.Log) (subscriptionOps, error) {
	return log.Ops(), nil
}
