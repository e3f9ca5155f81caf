package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestAttackCommitTerminatedAfterLocalCommit: a COMMIT the server answers
// with an error may still have committed. With synchronous replication
// (synchronous_standby_names set, the standby slow or gone) a backend
// terminated while it waits for the standby (pg_terminate_backend, a
// failover tool, a restart with -m fast) sends "WARNING: canceling the wait
// for synchronous replication ... The transaction has already committed
// locally" and FATAL 57P01. Were that reported as a server error
// (ServerReported), the orchestrator would take it for a refused COMMIT,
// skip the commit marker and retry: the command applied twice, or reported
// failed although it committed. The dispatch must succeed, once.
//
// Held when written: pgx reports the terminated COMMIT as a closed
// connection (not a *pgconn.PgError), so the marker is looked up and the
// dispatch succeeds once, on both drivers. Kept as the regression test of
// that path.
//
// On a throwaway cluster of its own (synchronous_standby_names names a
// standby that never connects, so every COMMIT waits).
func TestAttackCommitTerminatedAfterLocalCommit(t *testing.T) {
	server := newCluster(t)
	ctx := context.Background()
	admin := openStore(t, server+"postgres?sslmode=disable")
	db := admin.Driver().DB()
	_, err := db.ExecContext(ctx, `CREATE DATABASE syncrep`)
	require.NoError(t, err)
	dsn := server + "syncrep?sslmode=disable"
	setup := openStore(t, dsn)
	require.NoError(t, setup.Migrate(ctx))

	_, err = db.ExecContext(ctx, `ALTER SYSTEM SET synchronous_standby_names = 'nobody'`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `SELECT pg_reload_conf()`)
	require.NoError(t, err)
	// The reload is asynchronous: wait until a new session sees it.
	require.Eventually(t, func() bool {
		var v string
		require.NoError(t, db.QueryRowContext(ctx, `SHOW synchronous_standby_names`).Scan(&v))
		return v == "nobody"
	}, 10*time.Second, 50*time.Millisecond)

	// terminateWaiter ends the backend that waits for the standby.
	terminateWaiter := func(t *testing.T, done <-chan struct{}) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			var n int
			require.NoError(t, db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE wait_event = 'SyncRep' AND datname = 'syncrep'`).Scan(&n))
			if n > 0 {
				return
			}
			select {
			case <-done:
				t.Fatal("the dispatch ended without waiting for the standby")
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Fatal("no backend waited for the standby")
	}

	type result struct {
		res *orchestrator.Result
		err error
	}
	check := func(t *testing.T, store interface {
		StreamVersion(context.Context, string) (int64, error)
	}, stream string, r result) {
		t.Helper()
		v, err := store.StreamVersion(ctx, stream)
		require.NoError(t, err)
		require.Equal(t, int64(1), v, "the command's event is in the log once (dispatch said %v)", r.err)
		require.NoError(t, r.err, "the command committed: the dispatch must say so")
		require.Len(t, r.res.Events, 1)
	}

	t.Run("sqldriver", func(t *testing.T) {
		store := openStore(t, dsn)
		o := orchestrator.New(store, &orchestrator.Config{DispatchCommitMarkers: true, MaxAttempts: 3, BaseBackoff: time.Millisecond})
		orchestrator.HandleAny(o, "Open", func(_ context.Context, _ *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
			return []orchestrator.Emit{{Stream: "sql-open", Type: "Opened", Data: json.RawMessage(`{}`)}}, nil
		})
		done := make(chan struct{})
		out := make(chan result, 1)
		go func() {
			defer close(done)
			res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Open"})
			out <- result{res, err}
		}()
		terminateWaiter(t, done)
		// Later COMMITs wait too: let the retries through.
		released := releaseWaiters(t, db, done)
		r := <-out
		released()
		check(t, store, "sql-open", r)
	})

	t.Run("pgxdriver", func(t *testing.T) {
		drv, err := pgxdriver.Open(ctx, dsn)
		require.NoError(t, err)
		defer drv.Close()
		store := eventfold.New(drv, nil)
		o := orchestrator.New(store, &orchestrator.Config{DispatchCommitMarkers: true, MaxAttempts: 3, BaseBackoff: time.Millisecond})
		orchestrator.HandleAny(o, "Open", func(_ context.Context, _ pgx.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
			return []orchestrator.Emit{{Stream: "pgx-open", Type: "Opened", Data: json.RawMessage(`{}`)}}, nil
		})
		done := make(chan struct{})
		out := make(chan result, 1)
		go func() {
			defer close(done)
			res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Open", Envelope: orchestrator.Envelope{ID: "pgx-open-1"}})
			out <- result{res, err}
		}()
		terminateWaiter(t, done)
		released := releaseWaiters(t, db, done)
		r := <-out
		released()
		check(t, store, "pgx-open", r)
	})
}

// releaseWaiters cancels (pg_cancel_backend: the COMMIT then succeeds with
// a warning) every later backend of database syncrep that waits for the
// standby, until done is closed; the returned function waits for it to
// stop.
func releaseWaiters(t *testing.T, db *sql.DB, done <-chan struct{}) func() {
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, err := db.Exec(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = 'syncrep'`)
			if err != nil {
				t.Log(fmt.Sprint("release waiters: ", err))
			}
		}
	}()
	return func() { <-stopped }
}
