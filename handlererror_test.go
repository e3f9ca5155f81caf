package eventfold_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
)

// TestHandlerErrorOneType: the orchestrator's and the listener's handler
// errors are one type, matched by errors.As under every name, and each
// keeps the message it had when they were two types.
func TestHandlerErrorOneType(t *testing.T) {
	domain := errors.New("insufficient funds")
	cmd := fmt.Errorf("dispatch: %w", &orchestrator.HandlerError{Command: "Withdraw", CommandID: "c-1", Err: domain})
	sub := fmt.Errorf("run: %w", &listener.HandlerError{Subscription: "mailer",
		Event: eventfold.Event{GlobalPosition: 7, Type: "MoneyWithdrawn", StreamID: "account-1"}, Attempts: 3, Err: domain})

	for _, err := range []error{cmd, sub} {
		var ro *eventfold.HandlerError
		require.ErrorAs(t, err, &ro)
		var oe *orchestrator.HandlerError
		require.ErrorAs(t, err, &oe)
		var le *listener.HandlerError
		require.ErrorAs(t, err, &le)
		require.Same(t, ro, oe)
		require.Same(t, ro, le)
		require.ErrorIs(t, err, domain)
	}
	require.Equal(t, `dispatch: orchestrator: handler for command "Withdraw" (id c-1): insufficient funds`, cmd.Error())
	require.Equal(t, `run: listener: subscription "mailer": event at position 7 (MoneyWithdrawn in stream "account-1") failed 3 times: insufficient funds`, sub.Error())
}
