package orchestrator_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// The idempotency-scope tests run a tiny wallet app: "Deposit" lets a user
// put money into their own wallet only (the user comes from the envelope's
// metadata, as an authenticating edge would put it there), and refuses
// amounts below 1.

type idemDeposit struct {
	Wallet string `json:"wallet"`
	Amount int64  `json:"amount"`
}

func newWallet(t *testing.T, d eventfold.Dialect, cfg orchestrator.Config) (*eventfold.Store[*sql.Tx], *orchestrator.Orchestrator[*sql.Tx], *int) {
	t.Helper()
	store := testdb.SQLStore(t, d)
	if cfg.Scope == nil {
		// The caller's key space is the authenticated user.
		cfg.Scope = func(env orchestrator.Envelope) string { s, _ := env.Metadata["user"].(string); return s }
	}
	cfg.MaxAttempts, cfg.BaseBackoff = 50, time.Millisecond
	o := orchestrator.New(store, &cfg)
	var mu sync.Mutex
	runs := 0
	deposit := func(ctx context.Context, _ *sql.Tx, c idemDeposit) ([]orchestrator.Emit, error) {
		mu.Lock()
		runs++
		mu.Unlock()
		cmd, _ := orchestrator.CommandFrom(ctx)
		if user, _ := cmd.Envelope.Metadata["user"].(string); user != c.Wallet {
			return nil, orchestrator.Reject(errors.New("not your wallet"))
		}
		if c.Amount < 1 {
			return nil, orchestrator.Reject(errors.New("amount must be positive"))
		}
		return []orchestrator.Emit{{Stream: "wallet-" + c.Wallet, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
	}
	orchestrator.Handle(o, "Deposit", deposit)
	orchestrator.Handle(o, "Withdraw", deposit)
	return store, o, &runs
}

func as(user, id string) orchestrator.Envelope {
	return orchestrator.Envelope{ID: id, Metadata: map[string]any{"user": user}}
}

// TestIdempotencyKeyScope: a recorded command id is replayed only for the
// same scope, command name and payload. Bob reusing Alice's key runs his
// own command (separate key spaces); Alice reusing her key for another
// amount, another command or a payload the handler would refuse gets
// ErrIdempotencyKeyReused and nothing is stored. (On the code before
// migration 00007 all three got Alice's recorded event.)
func TestIdempotencyKeyScope(t *testing.T) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store, o, runs := newWallet(t, d, orchestrator.Config{})

		first, err := o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"alice","amount":10}`), as("alice", "k1"))
		require.NoError(t, err)
		require.False(t, first.Duplicate)

		// The same request again (other whitespace and key order): a replay.
		again, err := o.DispatchJSON(ctx, "Deposit", json.RawMessage(` { "amount" : 10, "wallet" : "alice" } `), as("alice", "k1"))
		require.NoError(t, err)
		require.True(t, again.Duplicate)
		require.Equal(t, first.Events[0].ID, again.Events[0].ID)

		head, err := store.LastPosition(ctx)
		require.NoError(t, err)
		before := *runs
		for _, c := range []struct {
			name, payload string
			differs       bool
		}{
			{"Deposit", `{"wallet":"alice","amount":11}`, true},
			{"Deposit", `{"wallet":"alice","amount":-5}`, true}, // the handler would refuse it: it must run, or be refused
			{"Withdraw", `{"wallet":"alice","amount":10}`, false},
		} {
			res, err := o.DispatchJSON(ctx, c.name, json.RawMessage(c.payload), as("alice", "k1"))
			require.Nil(t, res, "%s %s", c.name, c.payload)
			require.ErrorIs(t, err, orchestrator.ErrIdempotencyKeyReused, "%s %s", c.name, c.payload)
			var reused *orchestrator.IdempotencyKeyReusedError
			require.ErrorAs(t, err, &reused)
			require.Equal(t, "k1", reused.CommandID)
			require.Equal(t, "alice", reused.Scope)
			require.Equal(t, c.differs, reused.PayloadDiffers)
			require.Equal(t, "Deposit", reused.RecordedCommand)
		}
		require.Equal(t, before, *runs, "a refused reuse must not run the handler")
		now, err := store.LastPosition(ctx)
		require.NoError(t, err)
		require.Equal(t, head, now, "a refused reuse must store nothing")

		// Bob's "k1" is Bob's own command: it runs, and he never sees
		// Alice's event or metadata.
		bob, err := o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"bob","amount":10}`), as("bob", "k1"))
		require.NoError(t, err)
		require.False(t, bob.Duplicate)
		require.Equal(t, "wallet-bob", bob.Events[0].StreamID)
		// Bob replaying Alice's exact request under Alice's key runs it as
		// his own, and the handler refuses it: not Alice's event.
		_, err = o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"alice","amount":10}`), as("bob", "k2"))
		var he *orchestrator.HandlerError
		require.ErrorAs(t, err, &he)
		_, err = o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"alice","amount":10}`), as("bob", "k1"))
		require.ErrorIs(t, err, orchestrator.ErrIdempotencyKeyReused) // Bob's own k1 had another payload
		evs, err := store.ReadStream(ctx, "wallet-alice", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Len(t, evs, 1)

		// A typed dispatch hashes like its JSON form: a retry through
		// another entry point is still a retry.
		typed, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: idemDeposit{Wallet: "alice", Amount: 10}, Envelope: as("alice", "k1")})
		require.NoError(t, err)
		require.True(t, typed.Duplicate)
	})
}

// TestIdempotencyScopeInput: a scope is bounded and must be text; bad ones
// are refused before any SQL, with ErrInvalidInput.
func TestIdempotencyScopeInput(t *testing.T) {
	ctx := context.Background()
	_, o, runs := newWallet(t, eventfold.SQLite, orchestrator.Config{Scope: func(env orchestrator.Envelope) string { return env.Scope }})
	for _, scope := range []string{strings.Repeat("s", orchestrator.MaxScopeLength+1), "a\x00b", "\xff"} {
		env := as("alice", "k1")
		env.Scope = scope
		_, err := o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"alice","amount":1}`), env)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, "%q", scope)
		require.ErrorIs(t, err, orchestrator.ErrInvalidCommand, "%q", scope)
	}
	require.Zero(t, *runs)
	// Envelope.Scope works without Config.Scope; the longest scope fits.
	env := as("alice", "k1")
	env.Scope = strings.Repeat("s", orchestrator.MaxScopeLength)
	_, err := o.DispatchJSON(ctx, "Deposit", json.RawMessage(`{"wallet":"alice","amount":1}`), env)
	require.NoError(t, err)
}

// TestIdempotencyKeyScopeConcurrent: concurrent dispatches of one key with
// two payloads, by two users: per user and key one payload applies, the
// other is refused (also when both share one group-commit batch), and no
// caller ever gets another caller's event.
func TestIdempotencyKeyScopeConcurrent(t *testing.T) {
	for _, mode := range []struct {
		name string
		cfg  orchestrator.Config
	}{
		{"lone", orchestrator.Config{}},
		{"group", orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1, MaxBatch: 16}}},
	} {
		t.Run(mode.name, func(t *testing.T) { testIdempotencyKeyScopeConcurrent(t, mode.cfg) })
	}
}

func testIdempotencyKeyScopeConcurrent(t *testing.T, cfg orchestrator.Config) {
	forEachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store, o, _ := newWallet(t, d, cfg)
		const n = 24
		var wg sync.WaitGroup
		errs := make([]error, n)
		results := make([]*orchestrator.Result, n)
		for i := range n {
			wg.Go(func() {
				user := []string{"alice", "bob"}[i%2]
				amount := 10
				if i%4 >= 2 {
					amount = 20 // the same key as i-2 with another payload
				}
				payload := fmt.Sprintf(`{"wallet":%q,"amount":%d}`, user, amount)
				results[i], errs[i] = o.DispatchJSON(ctx, "Deposit", json.RawMessage(payload), as(user, fmt.Sprintf("k%d", i/4)))
			})
		}
		wg.Wait()
		applied, reused := map[string]int{}, 0
		for i := range n {
			if errs[i] != nil {
				require.ErrorIs(t, errs[i], orchestrator.ErrIdempotencyKeyReused, "command %d", i)
				reused++
				continue
			}
			user := []string{"alice", "bob"}[i%2]
			require.Equal(t, "wallet-"+user, results[i].Events[0].StreamID, "command %d got another caller's event", i)
			if !results[i].Duplicate {
				applied[user]++
			}
		}
		// Per user and key, the first of the two payloads to commit wins;
		// the other is refused.
		require.Equal(t, n/2, reused)
		require.Equal(t, map[string]int{"alice": n / 4, "bob": n / 4}, applied)
		for _, user := range []string{"alice", "bob"} {
			evs, err := store.ReadStream(ctx, "wallet-"+user, eventfold.ReadStreamOptions{})
			require.NoError(t, err)
			require.Len(t, evs, n/4)
		}
	})
}
