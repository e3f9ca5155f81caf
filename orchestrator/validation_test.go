package orchestrator_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// TestEnvelopeValidatedBeforeMiddleware checks that a bad command id,
// correlation id or JSON payload is refused before any middleware (which
// may run SQL) or handler runs, with an error that matches both
// ErrInvalidCommand and eventfold.ErrInvalidInput.
func TestEnvelopeValidatedBeforeMiddleware(t *testing.T) {
	store := testdb.SQLStore(t, eventfold.SQLite)
	o := orchestrator.New(store, nil)
	ran := 0
	o.Use(func(next orchestrator.Dispatcher) orchestrator.Dispatcher {
		return func(ctx context.Context, cmd orchestrator.Command) (*orchestrator.Result, error) {
			ran++
			return next(ctx, cmd)
		}
	})
	orchestrator.HandleAny(o, "Noop", func(context.Context, *sql.Tx, orchestrator.Command) ([]orchestrator.Emit, error) {
		ran++
		return nil, nil
	})
	for _, c := range []struct {
		env     orchestrator.Envelope
		payload string
		want    string
	}{
		{orchestrator.Envelope{ID: "pay-1 "}, `{}`, "invalid command id: ends with white space"},
		{orchestrator.Envelope{ID: "pay\x00"}, `{}`, "invalid command id: contains a NUL"},
		{orchestrator.Envelope{ID: "pay\xff"}, `{}`, "invalid command id: is not valid UTF-8"},
		{orchestrator.Envelope{CorrelationID: "\u200bc"}, `{}`, "invalid correlation id: contains the invisible"},
		{orchestrator.Envelope{}, `{"a":"\u0000"}`, `invalid command payload: holds the escape \u0000`},
		{orchestrator.Envelope{}, `["\udfff"]`, "invalid command payload: holds a lone UTF-16 surrogate"},
	} {
		_, err := o.DispatchJSON(context.Background(), "Noop", json.RawMessage(c.payload), c.env)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput)
		require.ErrorIs(t, err, orchestrator.ErrInvalidCommand)
		require.ErrorContains(t, err, c.want)
	}
	require.Zero(t, ran, "middleware or handler ran")
	require.Panics(t, func() {
		orchestrator.HandleAny(o, "Bad\x00Name", func(context.Context, *sql.Tx, orchestrator.Command) ([]orchestrator.Emit, error) { return nil, nil })
	})
	require.Panics(t, func() {
		orchestrator.HandleAny(o, "Trailing ", func(context.Context, *sql.Tx, orchestrator.Command) ([]orchestrator.Emit, error) { return nil, nil })
	})
}
