package orchestrator_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestCommandScopeMigration upgrades a store at version 4 holding an
// idempotency record to 00007: the old record stays a replay for its
// command (scope "", no payload hash, so only the name is checked), new
// records are scoped, and the down migration goes back to one record per id.
func TestCommandScopeMigration(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		t.Cleanup(func() { drv.Close() })
		store := eventfold.New(drv, nil)
		p, err := eventfold.NewMigrator(d, drv.DB())
		require.NoError(t, err)
		// 00006 is the schema just before 00007 (the version this test
		// upgrades from); the store's append needs it on PostgreSQL.
		_, err = p.UpTo(ctx, 6)
		require.NoError(t, err)

		// What the old orchestrator wrote for command "old-1": its event
		// and its record (id, name, refs).
		evs, err := store.Append(ctx, "wallet-alice", eventfold.NoStream, eventfold.EventData{Type: "Deposited", Data: []byte(`{"wallet":"alice","amount":10}`)})
		require.NoError(t, err)
		table := "eventfold_commands"
		if d == eventfold.Postgres {
			table = "eventfold.commands"
		}
		insert := "INSERT INTO " + table + " (command_id, command_type, events) VALUES (" + ph(d, 1) + ", " + ph(d, 2) + ", " + ph(d, 3) + ")"
		if d == eventfold.MySQL {
			insert = "INSERT INTO " + table + " (command_id, command_type, events, recorded_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))"
		}
		_, err = drv.DB().ExecContext(ctx, insert, "old-1", "Deposit", `[{"s":"wallet-alice","v":1}]`)
		require.NoError(t, err)

		_, err = p.Up(ctx)
		require.NoError(t, err)

		o := orchestrator.New(store, &orchestrator.Config{})
		orchestrator.Handle(o, "Deposit", func(context.Context, *sql.Tx, idemDeposit) ([]orchestrator.Emit, error) {
			t.Error("the handler ran for a recorded command")
			return nil, nil
		})
		orchestrator.Handle(o, "Withdraw", func(context.Context, *sql.Tx, idemDeposit) ([]orchestrator.Emit, error) {
			return nil, orchestrator.Reject(errors.New("no"))
		})
		// The old record replays for its command (payload unknown: not checked).
		res, err := o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"alice","amount":10}`), orchestrator.Envelope{ID: "old-1"})
		require.NoError(t, err)
		require.True(t, res.Duplicate)
		require.Equal(t, evs[0].ID, res.Events[0].ID)
		// ... and refuses another command name.
		_, err = o.DispatchJSON(ctx, "Withdraw", json.RawMessage(`{"wallet":"alice","amount":10}`), orchestrator.Envelope{ID: "old-1"})
		require.ErrorIs(t, err, orchestrator.ErrIdempotencyKeyReused)

		// Two scopes with one id, then down to 4: one record per id stays,
		// the oldest, and up again works.
		for _, scope := range []string{"s1", "s2"} {
			_, err = store.Append(ctx, "wallet-"+scope, eventfold.NoStream, eventfold.EventData{Type: "Deposited", Data: []byte(`{}`)})
			require.NoError(t, err)
		}
		o2 := orchestrator.New(store, &orchestrator.Config{})
		orchestrator.HandleAny(o2, "Open", func(ctx context.Context, _ *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
			return []orchestrator.Emit{{Stream: "open-" + cmd.Envelope.Scope, Type: "Opened", Data: cmd.Payload}}, nil
		})
		for _, scope := range []string{"s1", "s2"} {
			_, err := o2.DispatchJSON(ctx, "Open", json.RawMessage(`{}`), orchestrator.Envelope{ID: "shared", Scope: scope})
			require.NoError(t, err)
			time.Sleep(5 * time.Millisecond) // distinct recorded_at
		}
		_, err = p.DownTo(ctx, 4)
		require.NoError(t, err)
		var n int
		require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE command_id = 'shared'").Scan(&n))
		require.Equal(t, 1, n)
		_, err = p.Up(ctx)
		require.NoError(t, err)
		res, err = o2.DispatchJSON(ctx, "Open", json.RawMessage(`{}`), orchestrator.Envelope{ID: "shared"})
		require.NoError(t, err)
		require.True(t, res.Duplicate)
		require.Equal(t, "open-s1", res.Events[0].StreamID, "the oldest record survives the down migration")
	})
}
