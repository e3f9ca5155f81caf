package orchestrator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// The commit-pipeline tests run on pgx, whose transactions send BEGIN with
// the first statement and the idempotency record and commit marker with
// COMMIT (the other orchestrator tests run on database/sql).

// pgxWallet is newWallet on pgx, on drv.
func pgxWallet(t *testing.T, drv *pgxdriver.Driver, cfg orchestrator.Config) (*eventfold.Store[pgx.Tx], *orchestrator.Orchestrator[pgx.Tx]) {
	t.Helper()
	store := eventfold.New(drv, nil)
	cfg.Scope = func(env orchestrator.Envelope) string { s, _ := env.Metadata["user"].(string); return s }
	cfg.MaxAttempts, cfg.BaseBackoff = 50, time.Millisecond
	o := orchestrator.New(store, &cfg)
	orchestrator.Handle(o, "Deposit", func(ctx context.Context, _ pgx.Tx, c idemDeposit) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "wallet-" + c.Wallet, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
	})
	orchestrator.Handle(o, "Withdraw", func(ctx context.Context, _ pgx.Tx, c idemDeposit) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "wallet-" + c.Wallet, Expected: eventfold.Any, Type: "Withdrawn", Data: c}}, nil
	})
	return store, o
}

func openPgx(t *testing.T, dsn string) *pgxdriver.Driver {
	t.Helper()
	drv, err := pgxdriver.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// TestPgxIdempotencyConcurrent is TestIdempotencyKeyScopeConcurrent on
// pgx, with and without commit markers: concurrent dispatches of one key
// meet at the record queued with COMMIT (a unique violation there, not ON
// CONFLICT DO NOTHING, so that the loser commits nothing), and are
// answered as before: the same payload replays, another is refused.
func TestPgxIdempotencyConcurrent(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	for _, mode := range []struct {
		name string
		cfg  orchestrator.Config
	}{
		{"markers=false", orchestrator.Config{}},
		{"markers=true", orchestrator.Config{DispatchCommitMarkers: true}},
		// Batched group commit queues the batch's records with COMMIT too.
		{"batched", orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 2, MaxBatch: 8, Batched: true}}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			store, o := pgxWallet(t, openPgx(t, dsn), mode.cfg)
			run := fmt.Sprintf("%d", time.Now().UnixNano())
			const n = 24
			var wg sync.WaitGroup
			errs := make([]error, n)
			results := make([]*orchestrator.Result, n)
			for i := range n {
				wg.Go(func() {
					user := []string{"alice", "bob"}[i%2] + run
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
				user := []string{"alice", "bob"}[i%2] + run
				require.Equal(t, "wallet-"+user, results[i].Events[0].StreamID, "command %d got another caller's event", i)
				if !results[i].Duplicate {
					applied[user]++
				}
			}
			require.Equal(t, n/2, reused)
			require.Equal(t, map[string]int{"alice" + run: n / 4, "bob" + run: n / 4}, applied)
			for _, user := range []string{"alice", "bob"} {
				evs, err := store.ReadStream(ctx, "wallet-"+user+run, eventfold.ReadStreamOptions{})
				require.NoError(t, err)
				require.Len(t, evs, n/4, "a losing dispatch committed its event")
			}
		})
	}
}

// TestPgxRecordConflictCommitsNothing: a dispatch whose queued record
// meets a record of the same key committed meanwhile by another
// transaction commits nothing of its own, and its retry answers from that
// record (here another command: ErrIdempotencyKeyReused).
func TestPgxRecordConflictCommitsNothing(t *testing.T) {
	ctx := context.Background()
	drv := openPgx(t, testdb.DSN(t, eventfold.Postgres))
	store, o := pgxWallet(t, drv, orchestrator.Config{})
	// The other transaction records key "k" for a Withdraw first and
	// commits only once the Deposit below waits on the key.
	other, err := drv.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = drv.Rollback(ctx, other) }()
	_, err = o.DispatchTx(ctx, other, orchestrator.Command{Name: "Withdraw", Payload: idemDeposit{Wallet: "w", Amount: 5},
		Envelope: orchestrator.Envelope{ID: "k", Metadata: map[string]any{"user": "u"}}})
	require.NoError(t, err)
	var pid uint32
	require.NoError(t, other.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid))

	done := make(chan error, 1)
	go func() {
		_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: idemDeposit{Wallet: "d", Amount: 7},
			Envelope: orchestrator.Envelope{ID: "k", Metadata: map[string]any{"user": "u"}}})
		done <- err
	}()
	// Wait until a session waits for the other transaction's lock.
	require.Eventually(t, func() bool {
		var waiting bool
		err := drv.Pool().QueryRow(ctx, "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> $1 AND datname = current_database()", pid).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, drv.Commit(ctx, other))
	err = <-done
	require.ErrorIs(t, err, orchestrator.ErrIdempotencyKeyReused)
	v, err := store.StreamVersion(ctx, "wallet-d")
	require.NoError(t, err)
	require.Equal(t, int64(0), v, "the refused Deposit committed its event")
	v, err = store.StreamVersion(ctx, "wallet-w")
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
}

// TestPgxDispatchLostCommitReply is TestDispatchLostCommitReply on pgx,
// for commands with ids: the record and the marker go in the COMMIT's
// pipeline. A lost reply is answered from the marker; a COMMIT that never
// reached the server is retried, and each command is applied once.
func TestPgxDispatchLostCommitReply(t *testing.T) {
	proxy := testdb.StartCommitProxy(t, testdb.DSN(t, eventfold.Postgres))
	drv := openPgx(t, proxy.DSN)
	store := eventfold.New(drv, nil)
	o := orchestrator.New(store, &orchestrator.Config{DispatchCommitMarkers: true})
	orchestrator.Handle(o, "Add", func(ctx context.Context, _ pgx.Tx, c lcAdd) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: fmt.Sprintf("lc-%d", c.N), Expected: eventfold.Any, Type: "Added", Data: c}}, nil
	})
	ctx := context.Background()
	var dropReply, dropQuery atomic.Bool
	proxy.SetDropReply(func() bool { return dropReply.Swap(false) })
	proxy.SetDropQuery(func() bool { return dropQuery.Swap(false) })

	dropReply.Store(true)
	res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: 0}, Envelope: orchestrator.Envelope{ID: "c0"}})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Equal(t, int64(1), proxy.RepliesDropped.Load())

	dropQuery.Store(true)
	res, err = o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: 1}, Envelope: orchestrator.Envelope{ID: "c1"}})
	require.NoError(t, err)
	require.Len(t, res.Events, 1)
	require.Equal(t, 2, res.Attempts, "the COMMIT that never arrived is retried")
	require.Equal(t, int64(1), proxy.QueriesDropped.Load())

	for i := range 2 {
		v, err := store.StreamVersion(ctx, fmt.Sprintf("lc-%d", i))
		require.NoError(t, err)
		require.Equal(t, int64(1), v, "events of command %d", i)
		// A re-dispatch replays the record: it was committed, once.
		res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: i}, Envelope: orchestrator.Envelope{ID: fmt.Sprintf("c%d", i)}})
		require.NoError(t, err)
		require.True(t, res.Duplicate)
	}
}

// TestPgxMarkerTableMissing: a queued commit marker the server refuses
// (no table) fails the dispatch with the error a marker written on its
// own gave, and commits nothing.
func TestPgxMarkerTableMissing(t *testing.T) {
	ctx := context.Background()
	drv := openPgx(t, testdb.DSN(t, eventfold.Postgres))
	_, err := drv.Pool().Exec(ctx, "ALTER TABLE eventfold.commit_markers RENAME TO commit_markers_gone")
	require.NoError(t, err)
	store := eventfold.New(drv, nil)
	o := orchestrator.New(store, &orchestrator.Config{DispatchCommitMarkers: true, MaxAttempts: 1})
	orchestrator.Handle(o, "Add", func(ctx context.Context, _ pgx.Tx, c lcAdd) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: fmt.Sprintf("lc-%d", c.N), Expected: eventfold.Any, Type: "Added", Data: c}}, nil
	})
	_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: 0}, Envelope: orchestrator.Envelope{ID: "m0"}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "is migration 00009 applied?")
	var ce *orchestrator.CommitError
	require.False(t, errors.As(err, &ce), "a refused marker is no commit error: %v", err)
	v, err := store.StreamVersion(ctx, "lc-0")
	require.NoError(t, err)
	require.Equal(t, int64(0), v)
}

// TestPgxBatchedSameIDInOneBatch: batched group commit on pgx sends the
// idempotency records with COMMIT, so a command whose id an earlier
// command of the same transaction carries cannot find its record there:
// it is dispatched on its own after the COMMIT and replays the first one's
// events (the same payload) or is refused (another payload); the batch's
// other commands commit together.
func TestPgxBatchedSameIDInOneBatch(t *testing.T) {
	ctx := context.Background()
	drv := openPgx(t, testdb.DSN(t, eventfold.Postgres))
	store, o := pgxWallet(t, drv, orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1, Batched: true}})
	started, release := make(chan struct{}), make(chan struct{})
	orchestrator.Handle(o, "Gate", func(ctx context.Context, _ pgx.Tx, _ struct{}) ([]orchestrator.Emit, error) {
		close(started)
		<-release
		return nil, nil
	})
	run := fmt.Sprintf("%d", time.Now().UnixNano())
	gateDone := make(chan error, 1)
	go func() {
		_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Gate", Payload: struct{}{}})
		gateDone <- err
	}()
	<-started
	payloads := []string{
		fmt.Sprintf(`{"wallet":"a%s","amount":10}`, run), // key k
		fmt.Sprintf(`{"wallet":"b%s","amount":1}`, run),  // key other
		fmt.Sprintf(`{"wallet":"a%s","amount":10}`, run), // key k again, same payload
		fmt.Sprintf(`{"wallet":"a%s","amount":20}`, run), // key k again, another payload
	}
	keys := []string{"k", "other", "k", "k"}
	results := make([]*orchestrator.Result, len(payloads))
	errs := make([]error, len(payloads))
	var wg sync.WaitGroup
	for i := range payloads {
		wg.Go(func() {
			results[i], errs[i] = o.DispatchJSON(ctx, "Deposit", json.RawMessage(payloads[i]), as("u"+run, keys[i]))
		})
		for orchestrator.QueuedForTest(o) < i+1 {
			time.Sleep(100 * time.Microsecond) // queued in this order
		}
	}
	close(release)
	require.NoError(t, <-gateDone)
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	require.False(t, results[0].Duplicate)
	require.Equal(t, 2, results[0].BatchSize, "the first two commit together")
	require.Equal(t, 2, results[1].BatchSize)
	require.NoError(t, errs[2])
	require.True(t, results[2].Duplicate)
	require.Equal(t, results[0].Events[0].ID, results[2].Events[0].ID, "the replay returns the first command's event")
	require.Equal(t, results[0].Events[0].GlobalPosition, results[2].Events[0].GlobalPosition)
	require.ErrorIs(t, errs[3], orchestrator.ErrIdempotencyKeyReused)
	evs, err := store.ReadStream(ctx, "wallet-a"+run, eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, evs, 1)
}
