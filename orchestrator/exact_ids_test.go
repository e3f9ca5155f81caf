package orchestrator_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/examples/bank"
)

// TestCommandIDsDifferingByATrailingSpace: on MariaDB (PAD SPACE
// utf8mb4_bin before migration 00005) command id "pay-X " after "pay-X"
// came back as a duplicate carrying the other command's events, and the
// second payment was silently dropped. Since then the schema compares ids
// byte for byte (see the dialect's exact-identifier tests), and the
// identifier rules, the same on every dialect, refuse an id that ends in
// white space before any SQL runs: the caller learns it, nothing is
// dropped and nothing is stored.
func TestCommandIDsDifferingByATrailingSpace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		b := setup(t, d, nil)
		b.open(t, "alice", "NL-1")
		first := b.mustDispatch(t, "pay-X", bank.Deposit{AccountID: "alice", Amount: 10})
		_, err := b.app.Dispatch(b.ctx, "pay-X ", bank.Deposit{AccountID: "alice", Amount: 20})
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, `"pay-X " is refused, never taken for "pay-X"`)
		require.Equal(t, int64(10), b.balance(t, "alice"))
		again := b.mustDispatch(t, "pay-X", bank.Deposit{AccountID: "alice", Amount: 10})
		require.True(t, again.Duplicate)
		require.Equal(t, first.Events[0].ID, again.Events[0].ID)
	})
}
