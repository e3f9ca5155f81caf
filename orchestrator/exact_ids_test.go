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
// second payment was silently dropped. Each id is a command of its own.
func TestCommandIDsDifferingByATrailingSpace(t *testing.T) {
	b := setup(t, eventfold.MySQL, nil)
	b.open(t, "alice", "NL-1")
	first := b.mustDispatch(t, "pay-X", bank.Deposit{AccountID: "alice", Amount: 10})
	second := b.mustDispatch(t, "pay-X ", bank.Deposit{AccountID: "alice", Amount: 20})
	require.False(t, second.Duplicate, `"pay-X " is not a redelivery of "pay-X"`)
	require.NotEqual(t, first.Events[0].ID, second.Events[0].ID)
	require.Equal(t, int64(30), b.balance(t, "alice"))
	again := b.mustDispatch(t, "pay-X ", bank.Deposit{AccountID: "alice", Amount: 20})
	require.True(t, again.Duplicate)
	require.Equal(t, second.Events[0].ID, again.Events[0].ID)
}
