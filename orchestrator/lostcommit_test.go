package orchestrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// The lost-COMMIT tests put a real TCP proxy (testdb.CommitProxy) between
// the orchestrator and PostgreSQL or MariaDB. The proxy recognises the
// server's answer to COMMIT and cuts the connection right after the server
// committed (the reply never arrives), or cuts it instead of forwarding the
// COMMIT. Every caller must then be told the truth, and no command may be
// applied twice. SQLite is not among them: it runs inside the process, so
// there is no connection that could lose a COMMIT's reply.

type lcAdd struct {
	N int `json:"n"`
}

// lcSetup opens a store through a commit proxy, with one command "Add"
// that appends one event to stream "lc-<n>".
func lcSetup(t *testing.T, d eventfold.Dialect, cfg *orchestrator.Config) (*testdb.CommitProxy, *eventfold.Store[*sql.Tx], *orchestrator.Orchestrator[*sql.Tx]) {
	t.Helper()
	dsn := testdb.DSN(t, d)
	proxy := testdb.StartCommitProxy(t, dsn)
	drv, err := sqldriver.Open(context.Background(), proxy.DSN)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	o := orchestrator.New(store, cfg)
	orchestrator.Handle(o, "Add", func(ctx context.Context, tx *sql.Tx, c lcAdd) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: fmt.Sprintf("lc-%d", c.N), Expected: eventfold.Any, Type: "Added", Data: c}}, nil
	})
	return proxy, store, o
}

// lcCheck asserts that each command 0..n-1 left exactly one event: its
// stream is at version 1 (a command applied twice would leave version 2).
// Stream versions, not ReadAll: on the shared PostgreSQL server other
// databases' transactions hold the read horizon back.
func lcCheck(t *testing.T, store *eventfold.Store[*sql.Tx], n int) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < n; i++ {
		v, err := store.StreamVersion(ctx, fmt.Sprintf("lc-%d", i))
		require.NoError(t, err)
		require.Equal(t, int64(1), v, "events of command %d", i)
	}
	if store.Dialect() == eventfold.MySQL {
		// Positions are not dense since MySQL 00015 (a rolled-back attempt
		// leaves its AUTO_INCREMENT values unused): count the events.
		evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{Limit: 2*n + 10})
		require.NoError(t, err)
		require.Len(t, evs, n, "%d commands must leave %d events", n, n)
	}
}

// everyNth returns a decision function that says yes to every nth call.
func everyNth(n int64) func() bool {
	var c atomic.Int64
	return func() bool { return c.Add(1)%n == 0 }
}

func forEachServer(t *testing.T, fn func(t *testing.T, d eventfold.Dialect)) {
	for _, d := range []eventfold.Dialect{eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

// TestGroupCommitLostCommitReply: 200 concurrent commands without ids
// through one committer, every third COMMIT reply lost after the server
// committed. Before commit markers the batches ran again (232 events for
// 200 commands); now each caller is answered from the marker.
func TestGroupCommitLostCommitReply(t *testing.T) { groupCommitLostCommitReply(t, false) }

// TestGroupCommitBatchedLostCommitReply is TestGroupCommitLostCommitReply
// in batched mode.
func TestGroupCommitBatchedLostCommitReply(t *testing.T) { groupCommitLostCommitReply(t, true) }

func groupCommitLostCommitReply(t *testing.T, batched bool) {
	forEachServer(t, func(t *testing.T, d eventfold.Dialect) {
		proxy, store, o := lcSetup(t, d, &orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1, MaxBatch: 10, Batched: batched}})
		proxy.SetDropReply(everyNth(2))
		const n = 200
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: lcAdd{N: i}})
				if err == nil && (len(res.Events) != 1 || res.Events[0].StreamID != fmt.Sprintf("lc-%d", i)) {
					err = fmt.Errorf("got events %+v", res.Events)
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		require.Positive(t, proxy.RepliesDropped.Load(), "the proxy must have cut some COMMIT replies")
		t.Logf("%d COMMIT replies seen, %d cut", proxy.Commits.Load(), proxy.RepliesDropped.Load())
		lcCheck(t, store, n) // first: nothing applied twice
		for i, err := range errs {
			require.NoError(t, err, "command %d", i)
		}
	})
}

// TestGroupCommitLostCommitQuery: the proxy cuts the connection instead of
// forwarding COMMIT, so the batch did not commit; its commands must run
// again, once each.
func TestGroupCommitLostCommitQuery(t *testing.T) { groupCommitLostCommitQuery(t, false) }

// TestGroupCommitBatchedLostCommitQuery is TestGroupCommitLostCommitQuery
// in batched mode.
func TestGroupCommitBatchedLostCommitQuery(t *testing.T) { groupCommitLostCommitQuery(t, true) }

func groupCommitLostCommitQuery(t *testing.T, batched bool) {
	forEachServer(t, func(t *testing.T, d eventfold.Dialect) {
		proxy, store, o := lcSetup(t, d, &orchestrator.Config{GroupCommit: &orchestrator.GroupCommitConfig{Committers: 1, Batched: batched}})
		proxy.SetDropQuery(everyNth(3))
		const n = 100
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: lcAdd{N: i}})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "command %d", i)
		}
		require.Positive(t, proxy.QueriesDropped.Load())
		lcCheck(t, store, n)
	})
}

// TestDispatchLostCommitReply: with Config.DispatchCommitMarkers, a lone
// Dispatch whose COMMIT reply is lost returns its committed events (it
// returned *CommitError before), and one whose COMMIT never reached the
// server is retried and applied once. Without the option it keeps
// returning *CommitError and runs nothing twice.
func TestDispatchLostCommitReply(t *testing.T) {
	forEachServer(t, func(t *testing.T, d eventfold.Dialect) {
		proxy, store, o := lcSetup(t, d, &orchestrator.Config{DispatchCommitMarkers: true})
		ctx := context.Background()
		var dropReply, dropQuery atomic.Bool
		proxy.SetDropReply(func() bool { return dropReply.Swap(false) })
		proxy.SetDropQuery(func() bool { return dropQuery.Swap(false) })

		dropReply.Store(true)
		res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: 0}})
		require.NoError(t, err)
		require.Len(t, res.Events, 1)
		require.Equal(t, int64(1), proxy.RepliesDropped.Load())

		dropQuery.Store(true)
		res, err = o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: 1}})
		require.NoError(t, err)
		require.Len(t, res.Events, 1)
		require.Equal(t, 2, res.Attempts, "the COMMIT that never arrived is retried")
		require.Equal(t, int64(1), proxy.QueriesDropped.Load())
		lcCheck(t, store, 2)
	})
}

// TestLostCommitOutcomeUnknown: when the marker cannot be looked up (the
// proxy refuses new connections), group commit and a lone Dispatch answer
// with ErrCommitOutcomeUnknown and run nothing again.
func TestLostCommitOutcomeUnknown(t *testing.T) {
	forEachServer(t, func(t *testing.T, d eventfold.Dialect) {
		for _, group := range []bool{false, true} {
			t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
				cfg := &orchestrator.Config{ResolveTimeout: 300 * time.Millisecond, DispatchCommitMarkers: true}
				if group {
					cfg.GroupCommit = &orchestrator.GroupCommitConfig{Committers: 1}
				}
				proxy, store, o := lcSetup(t, d, cfg)
				proxy.SetDropReply(func() bool {
					proxy.Refuse.Store(true) // from now on the database is unreachable
					return true
				})
				_, err := o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: lcAdd{N: 0}})
				require.ErrorIs(t, err, orchestrator.ErrCommitOutcomeUnknown)
				var ce *orchestrator.CommitError
				require.True(t, errors.As(err, &ce), "want *CommitError, got %T", err)
				proxy.Refuse.Store(false)
				proxy.SetDropReply(nil)
				lcCheck(t, store, 1) // it did commit, once
			})
		}
	})
}

func TestDispatchLostCommitReplyWithoutMarkers(t *testing.T) {
	forEachServer(t, func(t *testing.T, d eventfold.Dialect) {
		proxy, store, o := lcSetup(t, d, nil)
		var drop atomic.Bool
		drop.Store(true)
		proxy.SetDropReply(func() bool { return drop.Swap(false) })
		_, err := o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: lcAdd{N: 0}})
		var ce *orchestrator.CommitError
		require.True(t, errors.As(err, &ce), "want *CommitError, got %v", err)
		lcCheck(t, store, 1)
	})
}

// TestCommitMarkersPruned: markers are only needed briefly; pruning deletes
// the ones made before the bound and keeps the newer ones.
func TestCommitMarkersPruned(t *testing.T) {
	forEachServer(t, func(t *testing.T, d eventfold.Dialect) {
		_, store, o := lcSetup(t, d, &orchestrator.Config{DispatchCommitMarkers: true})
		ctx := context.Background()
		count := func() (n int64) {
			table := "eventfold_commit_markers"
			if d == eventfold.Postgres {
				table = "eventfold.commit_markers"
			}
			require.NoError(t, store.Driver().DB().QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n))
			return n
		}
		for i := 0; i < 3; i++ {
			_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: i}})
			require.NoError(t, err)
		}
		require.Equal(t, int64(3), count(), "one marker per transaction")
		n, err := o.PruneCommitMarkers(ctx, time.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.Zero(t, n, "markers younger than the bound stay")
		time.Sleep(5 * time.Millisecond)
		bound := time.Now()
		_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Add", Payload: lcAdd{N: 3}})
		require.NoError(t, err)
		n, err = o.PruneCommitMarkers(ctx, bound)
		require.NoError(t, err)
		require.Equal(t, int64(3), n)
		require.Equal(t, int64(1), count(), "the marker made after the bound stays")
	})
}
