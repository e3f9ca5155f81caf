package orchestrator_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestAttackPgxPanicsAndEmptyCommands: pgxdriver's lazy transaction on a
// pool of ONE connection (a leaked or busy connection shows as the next
// dispatch hanging). A handler that panics while the rows of its first
// statement (sent in one pipeline with BEGIN) are still open; a reducer
// that panics after the append; a handler that panics before any SQL; and
// a command with an id whose handler returns no events and runs no SQL
// (its record and marker go with BEGIN and COMMIT in one pipeline). Each
// panic reaches the caller, commits nothing and leaves the pool's one
// connection usable; the empty command commits its record once and
// replays.
func TestAttackPgxPanicsAndEmptyCommands(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, "CREATE TABLE attack_panic_side (n int)")
	require.NoError(t, err)
	store := eventfold.New(pgxdriver.New(pool), nil)
	o := orchestrator.New(store, &orchestrator.Config{DispatchCommitMarkers: true, MaxAttempts: 3, BaseBackoff: time.Millisecond})

	orchestrator.HandleAny(o, "PanicWithRowsOpen", func(ctx context.Context, tx pgx.Tx, _ orchestrator.Command) ([]orchestrator.Emit, error) {
		if _, err := tx.Query(ctx, "INSERT INTO attack_panic_side VALUES ($1) RETURNING n", 1); err != nil {
			return nil, err
		}
		panic("handler: rows open")
	})
	orchestrator.HandleAny(o, "PanicBeforeSQL", func(context.Context, pgx.Tx, orchestrator.Command) ([]orchestrator.Emit, error) {
		panic("handler: before any SQL")
	})
	orchestrator.HandleAny(o, "ReducerPanics", func(ctx context.Context, tx pgx.Tx, _ orchestrator.Command) ([]orchestrator.Emit, error) {
		if _, err := tx.Exec(ctx, "INSERT INTO attack_panic_side VALUES ($1)", 2); err != nil {
			return nil, err
		}
		return []orchestrator.Emit{{Stream: "panic-r", Type: "Boom", Data: json.RawMessage(`{}`)}}, nil
	})
	orchestrator.ReduceEvent(o, "Boom", func(ctx context.Context, tx pgx.Tx, _ eventfold.Event) error {
		rows, err := tx.Query(ctx, "SELECT generate_series(1, 3)")
		if err != nil {
			return err
		}
		_ = rows // left open
		panic("reducer")
	})
	orchestrator.HandleAny(o, "Nothing", func(context.Context, pgx.Tx, orchestrator.Command) ([]orchestrator.Emit, error) {
		return nil, nil
	})
	orchestrator.HandleAny(o, "Open", func(context.Context, pgx.Tx, orchestrator.Command) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "panic-ok", Expected: eventfold.Any, Type: "Opened", Data: json.RawMessage(`{}`)}}, nil
	})

	dispatchPanics := func(name string) (v any) {
		defer func() { v = recover() }()
		_, _ = o.Dispatch(ctx, orchestrator.Command{Name: name, Envelope: orchestrator.Envelope{ID: "id-" + name}})
		return nil
	}
	for _, name := range []string{"PanicWithRowsOpen", "PanicBeforeSQL", "ReducerPanics"} {
		require.NotNil(t, dispatchPanics(name), "%s: the panic reaches the caller", name)
		// The pool's one connection is back and idle: this dispatch would
		// hang (ctx's minute) if it leaked or stayed busy.
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		res, err := o.Dispatch(dctx, orchestrator.Command{Name: "Open"})
		dcancel()
		require.NoError(t, err, "after %s", name)
		require.Len(t, res.Events, 1)
	}
	var side int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM attack_panic_side").Scan(&side))
	require.Zero(t, side, "nothing of a panicking command committed")
	v, err := store.StreamVersion(ctx, "panic-r")
	require.NoError(t, err)
	require.Zero(t, v, "the reducer's panic rolled its append back")
	v, err = store.StreamVersion(ctx, "panic-ok")
	require.NoError(t, err)
	require.Equal(t, int64(3), v)
	// No command record of a panicking command: re-dispatching it panics
	// again instead of replaying.
	require.NotNil(t, dispatchPanics("PanicBeforeSQL"))

	cmd := orchestrator.Command{Name: "Nothing", Envelope: orchestrator.Envelope{ID: "nothing-1"}}
	res, err := o.Dispatch(ctx, cmd)
	require.NoError(t, err)
	require.Empty(t, res.Events)
	require.False(t, res.Duplicate)
	res, err = o.Dispatch(ctx, cmd)
	require.NoError(t, err)
	require.True(t, res.Duplicate, "the empty command's record committed")
	require.Empty(t, res.Events)
	var idle int32
	require.Eventually(t, func() bool {
		idle = pool.Stat().IdleConns()
		return idle == 1
	}, 5*time.Second, 10*time.Millisecond, "the pool's connection is idle at the end")
	c, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer c.Release()
	require.Equal(t, byte('I'), c.Conn().PgConn().TxStatus(), "the pooled connection is not inside a leftover transaction")
}
