// Package txguard holds the one rollback-on-error-or-panic of eventfold
// (Store.InTx and the orchestrator's Dispatch): a deferred call that rolls
// a transaction back unless the code reached its successful COMMIT.
package txguard

import "context"

// Rollbacker rolls back a transaction of type TTx (eventfold.Driver is
// one).
type Rollbacker[TTx any] interface {
	Rollback(ctx context.Context, tx TTx) error
}

// RollbackUnless rolls tx back unless *done is true. Defer it right after
// Begin and set *done once the transaction committed (or once the caller
// took over ending it):
//
//	done := false
//	defer txguard.RollbackUnless(ctx, drv, tx, &done)
//
// A flag rather than recover() and the returned error, because it covers
// every way out: an error return, a panic (which then goes on unchanged,
// with its own stack), and runtime.Goexit (t.FailNow in a test), which
// neither recover() nor an error sees, and which would otherwise leave the
// transaction open and its connection (on SQLite, the one writer slot)
// held for ever. The rollback ignores ctx's cancellation: a cancelled
// caller must still give its transaction back.
func RollbackUnless[TTx any](ctx context.Context, r Rollbacker[TTx], tx TTx, done *bool) {
	if !*done {
		_ = r.Rollback(context.WithoutCancel(ctx), tx)
	}
}
