package orchestrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

// The group-commit tests run a small counter app: "Add" appends one event
// to a counter's stream (expecting the version its read-model row shows)
// and a reducer bumps the row. A "Gate" command holds the only committer
// until the test has queued the commands it wants in one batch.

type gcAdd struct {
	Counter string `json:"counter"`
	Fail    string `json:"fail,omitempty"` // "handler", "panic", "reducer" or "commit"
}

// gcPanic is what an "Add" with Fail "panic" panics with.
type gcPanic struct{ counter string }

type gcAdded struct {
	Fail string `json:"fail,omitempty"`
}

type gcGate struct{}

var errGCRefused = errors.New("gc test: handler refused")

type gcBundle struct {
	store   *eventfold.Store[*sql.Tx]
	o       *orchestrator.Orchestrator[*sql.Tx]
	d       eventfold.Dialect
	release chan struct{}
	started chan struct{}
	after   atomic.Int64 // AfterCommit calls
}

// ph renders placeholder i (1-based) for the dialect.
func ph(d eventfold.Dialect, i int) string {
	switch d {
	case eventfold.Postgres:
		return fmt.Sprintf("$%d", i)
	case eventfold.SQLServer:
		return fmt.Sprintf("@p%d", i)
	}
	return "?"
}

// setupGCMode sets the counter app up with group commit, batched or not.
func setupGCMode(t *testing.T, d eventfold.Dialect, committers int, batched bool) *gcBundle {
	t.Helper()
	store := testdb.SQLStore(t, d)
	db := store.Driver().DB()
	stmts := []string{"CREATE TABLE gc_counts (id VARCHAR(100) PRIMARY KEY, n INT NOT NULL)"}
	switch d {
	case eventfold.Postgres:
		stmts = append(stmts, "CREATE TABLE gc_deferred (k INT, CONSTRAINT gc_deferred_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)")
	case eventfold.SQLite:
		stmts = append(stmts, "CREATE TABLE gc_parent (id INTEGER PRIMARY KEY)",
			"CREATE TABLE gc_child (pid INTEGER REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED)")
	}
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	b := &gcBundle{store: store, d: d, release: make(chan struct{}), started: make(chan struct{}, 1)}
	b.o = orchestrator.New(store, &orchestrator.Config{
		// Contended counters under load: enough attempts that a slow CI
		// machine cannot exhaust them.
		MaxAttempts: 200, BaseBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		GroupCommit: &orchestrator.GroupCommitConfig{Committers: committers, Batched: batched},
		AfterCommit: func(context.Context, []eventfold.Event) { b.after.Add(1) },
	})
	orchestrator.Handle(b.o, "Gate", func(ctx context.Context, tx *sql.Tx, _ gcGate) ([]orchestrator.Emit, error) {
		b.started <- struct{}{}
		<-b.release
		return []orchestrator.Emit{{Stream: "gate", Expected: eventfold.Any, Type: "Gated", Data: struct{}{}}}, nil
	})
	orchestrator.Handle(b.o, "Add", func(ctx context.Context, tx *sql.Tx, c gcAdd) ([]orchestrator.Emit, error) {
		switch c.Fail {
		case "handler":
			return nil, errGCRefused
		case "panic":
			panic(gcPanic{c.Counter})
		}
		var n int64
		err := tx.QueryRowContext(ctx, "SELECT n FROM gc_counts WHERE id = "+ph(d, 1), c.Counter).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		return []orchestrator.Emit{{Stream: "counter-" + c.Counter, Expected: eventfold.Exact(n), Type: "Added", Data: gcAdded{Fail: c.Fail}}}, nil
	})
	orchestrator.Reduce(b.o, "Added", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event, a gcAdded) error {
		id := strings.TrimPrefix(ev.StreamID, "counter-")
		switch a.Fail {
		case "reducer":
			return errors.New("gc test: reducer failed")
		case "commit":
			// Accepted now, refused at COMMIT (a deferred constraint).
			var err error
			if d == eventfold.Postgres {
				_, err = tx.ExecContext(ctx, "INSERT INTO gc_deferred (k) VALUES (1), (1)")
			} else {
				_, err = tx.ExecContext(ctx, "INSERT INTO gc_child (pid) VALUES (42)")
			}
			if err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, "UPDATE gc_counts SET n = n + 1 WHERE id = "+ph(d, 1), id)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			_, err = tx.ExecContext(ctx, "INSERT INTO gc_counts (id, n) VALUES ("+ph(d, 1)+", 1)", id)
		}
		return err
	})
	return b
}

type gcOutcome struct {
	res      *orchestrator.Result
	err      error
	panicked any // what Dispatch panicked with, in the caller's goroutine
}

// batch holds the single committer with a Gate command, queues cmds behind
// it, releases the gate and returns every outcome (gate excluded).
func (b *gcBundle) batch(t *testing.T, cmds []gcAdd) []gcOutcome {
	t.Helper()
	all := make([]orchestrator.Command, len(cmds))
	for i, c := range cmds {
		all[i] = orchestrator.Command{Name: "Add", Payload: c}
	}
	return b.batchOf(t, all)
}

// batchOf is batch for any commands, queued in any order.
func (b *gcBundle) batchOf(t *testing.T, cmds []orchestrator.Command) []gcOutcome {
	t.Helper()
	return b.queue(t, cmds, false)
}

// batchInOrder is batchOf with the commands queued (and so run) in the
// order given.
func (b *gcBundle) batchInOrder(t *testing.T, cmds []orchestrator.Command) []gcOutcome {
	t.Helper()
	return b.queue(t, cmds, true)
}

func (b *gcBundle) queue(t *testing.T, cmds []orchestrator.Command, ordered bool) []gcOutcome {
	t.Helper()
	ctx := context.Background()
	gateDone := make(chan error, 1)
	go func() {
		_, err := b.o.Dispatch(ctx, orchestrator.Command{Name: "Gate", Payload: gcGate{}})
		gateDone <- err
	}()
	<-b.started
	out := make([]gcOutcome, len(cmds))
	var wg sync.WaitGroup
	for i, c := range cmds {
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					out[i] = gcOutcome{panicked: v}
				}
			}()
			res, err := b.o.Dispatch(ctx, c)
			out[i] = gcOutcome{res: res, err: err}
		})
		for ordered && orchestrator.QueuedForTest(b.o) < i+1 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for orchestrator.QueuedForTest(b.o) < len(cmds) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d commands queued", orchestrator.QueuedForTest(b.o), len(cmds))
		}
		time.Sleep(time.Millisecond)
	}
	close(b.release)
	if err := <-gateDone; err != nil {
		t.Fatalf("gate: %v", err)
	}
	wg.Wait()
	return out
}

func (b *gcBundle) count(t *testing.T, counter string) int64 {
	t.Helper()
	var n int64
	err := b.store.Driver().DB().QueryRow("SELECT n FROM gc_counts WHERE id = "+ph(b.d, 1), counter).Scan(&n)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	return n
}

func TestGroupCommit(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) { groupCommitCases(t, d, false) })
	}
}

// TestGroupCommitBatched runs TestGroupCommit's cases in batched mode
// (GroupCommitConfig.Batched): the same answers, the same state.
func TestGroupCommitBatched(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) { groupCommitCases(t, d, true) })
	}
}

func groupCommitCases(t *testing.T, d eventfold.Dialect, batched bool) {
	setupGC := func(t *testing.T, d eventfold.Dialect, committers int) *gcBundle {
		t.Helper()
		return setupGCMode(t, d, committers, batched)
	}
	t.Run("one-transaction", func(t *testing.T) {
		b := setupGC(t, d, 1)
		var cmds []gcAdd
		for i := range 12 {
			cmds = append(cmds, gcAdd{Counter: fmt.Sprintf("c%d", i%3)})
		}
		out := b.batch(t, cmds)
		for i, o := range out {
			if o.err != nil {
				t.Fatalf("command %d: %v", i, o.err)
			}
			if o.res.BatchSize != len(cmds) || len(o.res.Events) != 1 {
				t.Fatalf("command %d: batch size %d (want %d), %d events", i, o.res.BatchSize, len(cmds), len(o.res.Events))
			}
			if d == eventfold.Postgres && o.res.Events[0].GlobalPosition>>20 != out[0].res.Events[0].GlobalPosition>>20 {
				t.Fatalf("positions %d and %d come from different transactions", o.res.Events[0].GlobalPosition, out[0].res.Events[0].GlobalPosition)
			}
		}
		for c := range 3 {
			id := fmt.Sprintf("c%d", c)
			if n := b.count(t, id); n != 4 {
				t.Fatalf("counter %s = %d, want 4", id, n)
			}
			if v, _ := b.store.StreamVersion(context.Background(), "counter-"+id); v != 4 {
				t.Fatalf("stream of %s at version %d, want 4", id, v)
			}
		}
		if got := b.after.Load(); got != int64(len(cmds))+1 {
			t.Fatalf("AfterCommit ran %d times, want once per command (%d)", got, len(cmds)+1)
		}
	})
	t.Run("failures-roll-back-alone", func(t *testing.T) {
		b := setupGC(t, d, 1)
		cmds := []gcAdd{{Counter: "a"}, {Counter: "a", Fail: "handler"}, {Counter: "a"}, {Counter: "b", Fail: "reducer"}, {Counter: "a"}}
		out := b.batch(t, cmds)
		var he *orchestrator.HandlerError
		if !errors.As(out[1].err, &he) || !errors.Is(out[1].err, errGCRefused) {
			t.Fatalf("handler failure: %v", out[1].err)
		}
		var re *orchestrator.ReducerError
		if !errors.As(out[3].err, &re) {
			t.Fatalf("reducer failure: %v", out[3].err)
		}
		for _, i := range []int{0, 2, 4} {
			if out[i].err != nil || out[i].res.BatchSize != 3 {
				t.Fatalf("command %d: %+v, %v (want batch size 3)", i, out[i].res, out[i].err)
			}
		}
		if n := b.count(t, "a"); n != 3 {
			t.Fatalf("counter a = %d, want 3", n)
		}
		if n := b.count(t, "b"); n != 0 {
			t.Fatalf("counter b = %d: the failed reducer's command left traces", n)
		}
		if v, _ := b.store.StreamVersion(context.Background(), "counter-b"); v != 0 {
			t.Fatalf("stream b at version %d, want 0", v)
		}
	})
	t.Run("panic-is-the-callers", func(t *testing.T) {
		// A panicking handler must panic in its caller's goroutine,
		// as in a lone Dispatch, not in the committer goroutine
		// (which would kill the process); the others still commit.
		b := setupGC(t, d, 1)
		cmds := []gcAdd{{Counter: "p"}, {Counter: "q", Fail: "panic"}, {Counter: "p"}}
		out := b.batch(t, cmds)
		if pv, ok := out[1].panicked.(gcPanic); !ok || pv.counter != "q" {
			t.Fatalf("panicking command: %+v, want Dispatch to panic with gcPanic{q}", out[1])
		}
		for _, i := range []int{0, 2} {
			if out[i].panicked != nil || out[i].err != nil || out[i].res.BatchSize != 2 {
				t.Fatalf("command %d: %+v (want committed in a batch of 2)", i, out[i])
			}
		}
		if n := b.count(t, "p"); n != 2 {
			t.Fatalf("counter p = %d, want 2", n)
		}
		// A lone panicking command (a batch of one) too.
		func() {
			defer func() {
				if pv, ok := recover().(gcPanic); !ok || pv.counter != "r" {
					t.Fatalf("lone panicking command: recovered %v", pv)
				}
			}()
			_, _ = b.o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: "r", Fail: "panic"}})
		}()
	})
	if d != eventfold.Postgres && d != eventfold.SQLite {
		return // no deferred constraints to make a COMMIT fail on demand
	}
	t.Run("failed-commit-retries-one-by-one", func(t *testing.T) {
		b := setupGC(t, d, 1)
		cmds := []gcAdd{{Counter: "x"}, {Counter: "y", Fail: "commit"}, {Counter: "x"}}
		out := b.batch(t, cmds)
		var ce *orchestrator.CommitError
		if !errors.As(out[1].err, &ce) {
			t.Fatalf("command refused at commit: want *CommitError, got %v", out[1].err)
		}
		for _, i := range []int{0, 2} {
			if out[i].err != nil || out[i].res.BatchSize != 1 {
				t.Fatalf("command %d: %+v, %v (want committed on its own)", i, out[i].res, out[i].err)
			}
		}
		if n := b.count(t, "x"); n != 2 {
			t.Fatalf("counter x = %d, want 2", n)
		}
		if v, _ := b.store.StreamVersion(context.Background(), "counter-y"); v != 0 {
			t.Fatalf("stream y at version %d after a failed commit", v)
		}
	})
}

// TestGroupCommitUnderLoad dispatches concurrently on contended counters
// with several committers: whatever the batching, the final state equals
// the serial result.
func TestGroupCommitUnderLoad(t *testing.T) {
	groupCommitUnderLoad(t, false)
}

// TestGroupCommitBatchedUnderLoad is TestGroupCommitUnderLoad in batched
// mode.
func TestGroupCommitBatchedUnderLoad(t *testing.T) {
	groupCommitUnderLoad(t, true)
}

func groupCommitUnderLoad(t *testing.T, batched bool) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			b := setupGCMode(t, d, 3, batched)
			close(b.release) // no gate here
			const clients, each = 16, 8
			var wg sync.WaitGroup
			var batched atomic.Int64
			for c := range clients {
				wg.Go(func() {
					for range each {
						res, err := b.o.Dispatch(context.Background(), orchestrator.Command{Name: "Add", Payload: gcAdd{Counter: fmt.Sprintf("k%d", c%4)}})
						if err != nil {
							t.Errorf("dispatch: %v", err)
							return
						}
						if res.BatchSize > 1 {
							batched.Add(1)
						}
					}
				})
			}
			wg.Wait()
			for k := range 4 {
				id := fmt.Sprintf("k%d", k)
				if n := b.count(t, id); n != clients/4*each {
					t.Fatalf("counter %s = %d, want %d", id, n, clients/4*each)
				}
				evs, err := b.store.ReadStream(context.Background(), "counter-"+id, eventfold.ReadStreamOptions{})
				if err != nil || len(evs) != clients/4*each {
					t.Fatalf("stream %s: %d events, %v", id, len(evs), err)
				}
			}
			t.Logf("%d of %d commands shared a transaction", batched.Load(), clients*each)
		})
	}
}

// TestGroupCommitGathersWhileOneRuns: while a committer runs, commands
// that arrive wait for it and go in one batch, although committer slots
// are free, as long as fewer than MaxBatch/4 wait. Before, each arriving
// command took a free slot and ran a transaction of its own (the queue
// never held them: "only 3 of 6 commands queued").
func TestGroupCommitGathersWhileOneRuns(t *testing.T) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			for _, batched := range []bool{false, true} {
				b := setupGCMode(t, d, 4, batched)
				cmds := make([]gcAdd, 6) // fewer than the default MaxBatch (32) / 4
				for i := range cmds {
					cmds[i] = gcAdd{Counter: fmt.Sprintf("gather-%t-%d", batched, i)}
				}
				for i, out := range b.batch(t, cmds) {
					if out.err != nil || out.panicked != nil {
						t.Fatalf("batched=%t: command %d: %v %v", batched, i, out.err, out.panicked)
					}
					if out.res.BatchSize != len(cmds) {
						t.Errorf("batched=%t: command %d: batch size %d, want %d (one batch)", batched, i, out.res.BatchSize, len(cmds))
					}
				}
			}
		})
	}
}

// TestGroupCommitSQLiteOneCommitter: SQLite has one writer, so group
// commit defaults to one committer there. With more, a command arriving
// while the writer is busy would take a committer slot and a batch of its
// own, then wait for the write lock with it; with one, every command that
// arrives meanwhile waits in the queue and all go in the next transaction.
// (Before: the default was 4 everywhere; three of the ten commands below
// led batches of their own, so they never queued and the helper timed out.)
func TestGroupCommitSQLiteOneCommitter(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			b := setupGCMode(t, eventfold.SQLite, 0, batched) // 0: the default
			var cmds []gcAdd
			for i := range 10 {
				cmds = append(cmds, gcAdd{Counter: fmt.Sprintf("one-%d", i)})
			}
			for i, o := range b.batch(t, cmds) {
				if o.err != nil {
					t.Fatalf("command %d: %v", i, o.err)
				}
				if o.res.BatchSize != len(cmds) {
					t.Errorf("command %d committed in a batch of %d, want all %d in one", i, o.res.BatchSize, len(cmds))
				}
			}
		})
	}
}
