package orchestrator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestPgxEveryExecMode: every pgx QueryExecMode a pool may be configured
// with (PgBouncer setups put default_query_exec_mode=simple_protocol or
// exec in the DSN) runs the whole path: Append and AppendManyTx, reads of
// a stream and of the log, dispatch with an idempotency record and a
// commit marker (with and without group commit), its replay and a reused
// key, and an exactly-once subscription's checkpoint. Simple protocol and
// exec used to fail every append: event data went as bytea text into jsonb
// (SQLSTATE 22P02, invalid input syntax for type json).
func TestPgxEveryExecMode(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	modes := map[string]pgx.QueryExecMode{
		"cache_statement": pgx.QueryExecModeCacheStatement, "cache_describe": pgx.QueryExecModeCacheDescribe,
		"describe_exec": pgx.QueryExecModeDescribeExec, "exec": pgx.QueryExecModeExec,
		"simple_protocol": pgx.QueryExecModeSimpleProtocol,
	}
	for _, mode := range []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// As a user sets it: in the DSN.
			sep := "?"
			if containsQuery(dsn) {
				sep = "&"
			}
			cfg, err := pgxpool.ParseConfig(dsn + sep + "default_query_exec_mode=" + mode)
			require.NoError(t, err)
			require.Equal(t, modes[mode], cfg.ConnConfig.DefaultQueryExecMode)
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			store := eventfold.New(pgxdriver.New(pool), nil)
			run := fmt.Sprintf("%s-%d", mode, time.Now().UnixNano())

			// Append, as stored (jsonb's normal form) and as read back.
			data := json.RawMessage(`{"b": 1,  "a": "äö ✓ \"q\" \\ \u00e9 'x' {y}", "n": [1.50, null]}`)
			meta := json.RawMessage(`{"correlation_id": "c-1"}`)
			evs, err := store.Append(ctx, "em-"+run, eventfold.NoStream,
				eventfold.EventData{Type: "T", Data: data, Metadata: meta},
				eventfold.EventData{Type: "T", Data: json.RawMessage(`"just a string"`)},
				eventfold.EventData{Type: "T", Data: json.RawMessage(`null`)})
			require.NoError(t, err)
			require.Len(t, evs, 3)
			err = store.InTx(ctx, func(tx pgx.Tx) error {
				_, err := store.AppendManyTx(ctx, tx, []eventfold.StreamAppend{
					{StreamID: "em-" + run, Expected: eventfold.Exact(3), Events: []eventfold.EventData{{Type: "U", Data: json.RawMessage(`[1,2]`)}}},
					{StreamID: "em2-" + run, Expected: eventfold.Any, Events: []eventfold.EventData{{Type: "U", Data: json.RawMessage(`{}`)}, {Type: "U", Data: json.RawMessage(`1`)}}},
				})
				return err
			})
			require.NoError(t, err)
			read, err := store.ReadStream(ctx, "em-"+run, eventfold.ReadStreamOptions{})
			require.NoError(t, err)
			require.Len(t, read, 4)
			for i := range evs {
				require.JSONEq(t, string(evs[i].Data), string(read[i].Data))
				require.Equal(t, evs[i].GlobalPosition, read[i].GlobalPosition)
			}
			require.JSONEq(t, string(data), string(read[0].Data))
			require.JSONEq(t, string(meta), string(read[0].Metadata))
			require.JSONEq(t, `"just a string"`, string(read[1].Data))
			require.JSONEq(t, `null`, string(read[2].Data))
			require.JSONEq(t, `[1,2]`, string(read[3].Data))

			// Dispatch: idempotency record and commit marker, replay, reuse;
			// then the same with group commit.
			for gc, gcfg := range []*orchestrator.GroupCommitConfig{nil, {}, {Batched: true}} {
				ocfg := &orchestrator.Config{DispatchCommitMarkers: true, MaxAttempts: 50, BaseBackoff: time.Millisecond, GroupCommit: gcfg}
				o := orchestrator.New(store, ocfg)
				orchestrator.Handle(o, "Deposit", func(ctx context.Context, tx pgx.Tx, c idemDeposit) ([]orchestrator.Emit, error) {
					return []orchestrator.Emit{{Stream: "wallet-" + c.Wallet, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
				})
				wallet := fmt.Sprintf("%s-gc%d", run, gc)
				key := "k-" + wallet
				r1, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: idemDeposit{Wallet: wallet, Amount: 7}, Envelope: as("u", key)})
				require.NoError(t, err)
				require.False(t, r1.Duplicate)
				r2, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: idemDeposit{Wallet: wallet, Amount: 7}, Envelope: as("u", key)})
				require.NoError(t, err)
				require.True(t, r2.Duplicate)
				_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: idemDeposit{Wallet: wallet, Amount: 8}, Envelope: as("u", key)})
				require.ErrorIs(t, err, orchestrator.ErrIdempotencyKeyReused)
				ws, err := store.ReadStream(ctx, "wallet-"+wallet, eventfold.ReadStreamOptions{})
				require.NoError(t, err)
				require.Len(t, ws, 1)
				require.JSONEq(t, fmt.Sprintf(`{"wallet":%q,"amount":7}`, wallet), string(ws[0].Data))
			}

			// The log, and an exactly-once subscription over it.
			_, err = store.WaitHead(ctx, read[3].GlobalPosition+1)
			require.NoError(t, err)
			all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: read[0].GlobalPosition, Limit: 100000})
			require.NoError(t, err)
			mine := 0
			for _, e := range all {
				if e.StreamID == "em-"+run {
					mine++
				}
			}
			require.Equal(t, 4, mine)
			var mu sync.Mutex
			got := 0
			sub, err := listener.NewTx(store, "em-sub-"+run, func(ctx context.Context, tx pgx.Tx, ev eventfold.Event) error {
				if ev.StreamID == "em-"+run {
					mu.Lock()
					got++
					mu.Unlock()
				}
				return nil
			}, &listener.Options{StartAt: read[0].GlobalPosition - 1, PollInterval: 10 * time.Millisecond})
			require.NoError(t, err)
			sctx, scancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- sub.Run(sctx) }()
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return got == 4
			}, 30*time.Second, 20*time.Millisecond)
			require.Eventually(t, func() bool { return sub.Stats().Position >= read[3].GlobalPosition }, 30*time.Second, 20*time.Millisecond)
			scancel()
			<-done
		})
	}
}

func containsQuery(dsn string) bool {
	for _, c := range dsn {
		if c == '?' {
			return true
		}
	}
	return false
}
