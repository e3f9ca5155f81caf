package listener

import (
	"context"
	"fmt"
	"time"

	"github.com/eventfold/eventfold"
)

// subscriptionOps is what the listener needs beyond eventfold.Ops. Each
// dialect implements it in internal/dialect/<dialect>/subscriptions.go
// against the tables of migration 00003_subscriptions.
type subscriptionOps interface {
	GetCheckpoint(ctx context.Context, name string) (pos int64, found bool, err error)
	CreateCheckpoint(ctx context.Context, name string, pos int64) error
	AdvanceCheckpoint(ctx context.Context, name string, expected, pos int64) (bool, error)
	SetCheckpoint(ctx context.Context, name string, pos int64) error
	DeleteCheckpoint(ctx context.Context, name string) error
	ListCheckpoints(ctx context.Context, fn func(name string, pos int64, updatedAt time.Time)) error
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	LeaseOwner(ctx context.Context, name string) (string, error)
	ReleaseLease(ctx context.Context, name, owner string) error
}

func subOps(d eventfold.Dialect, ops eventfold.Ops) (subscriptionOps, error) {
	so, ok := ops.(subscriptionOps)
	if !ok {
		return nil, fmt.Errorf("listener: the %s driver (%T) has no checkpoint/lease operations", d, ops)
	}
	return so, nil
}

// writeOps runs fn on the subscription operations inside a short
// transaction of its own. Going through a transaction rather than the pool
// matters on SQLite, where the driver serialises writers in-process and an
// autocommit write beside it could meet SQLITE_BUSY.
func writeOps[TTx any](ctx context.Context, store *eventfold.Store[TTx], fn func(so subscriptionOps) error) error {
	d := store.Driver()
	return store.InTx(ctx, func(tx TTx) error {
		so, err := subOps(d.Dialect(), d.OpsTx(tx))
		if err != nil {
			return err
		}
		return fn(so)
	})
}

func readOps[TTx any](store *eventfold.Store[TTx]) (subscriptionOps, error) {
	d := store.Driver()
	return subOps(d.Dialect(), d.Ops())
}
