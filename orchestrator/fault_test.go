package orchestrator_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// tally is a tiny command for the pgx tests: add N to a counter row, as an
// event on stream "tally-<ID>" plus a read-model upsert in a reducer.
type tally struct {
	ID string `json:"id"`
	N  int64  `json:"n"`
}

// TestPgxKilledConnection kills the dispatching connection in the middle
// of a dispatch (pg_terminate_backend from a second connection, after the
// event was appended and while a reducer runs). The caller gets an error,
// nothing partial is stored, and re-dispatching the same command id is
// safe: it applies once. It also shows the orchestrator on pgx (pgx.Tx).
func TestPgxKilledConnection(t *testing.T) {
	store := testdb.PgxStore(t)
	ctx := context.Background()
	pool := store.Driver().(*pgxdriver.Driver).Pool()
	if _, err := pool.Exec(ctx, `CREATE TABLE tallies (id text PRIMARY KEY, total bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3})
	var kill atomic.Bool
	var handled atomic.Int32
	orchestrator.Handle(o, "Tally", func(ctx context.Context, tx pgx.Tx, c tally) ([]orchestrator.Emit, error) {
		handled.Add(1)
		var v int64
		err := tx.QueryRow(ctx, `SELECT coalesce((SELECT total FROM tallies WHERE id = $1), 0)`, c.ID).Scan(&v)
		if err != nil {
			return nil, err
		}
		return []orchestrator.Emit{{Stream: "tally-" + c.ID, Expected: eventfold.Any, Type: "Tallied", Data: c}}, nil
	})
	orchestrator.Reduce(o, "Tallied", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event, c tally) error {
		if kill.Load() {
			var pid int
			if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
				return err
			}
			// A second connection terminates the dispatching backend.
			var ok bool
			if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
				return fmt.Errorf("terminate backend %d: %v %v", pid, ok, err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO tallies (id, total) VALUES ($1, $2)
			ON CONFLICT (id) DO UPDATE SET total = tallies.total + excluded.total`, c.ID, c.N)
		return err
	}, orchestrator.WithName("tallies"))

	dispatch := func(id string) (*orchestrator.Result, error) {
		return o.Dispatch(ctx, orchestrator.Command{Name: "Tally", Payload: tally{ID: "a", N: 5}, Envelope: orchestrator.Envelope{ID: id}})
	}
	if _, err := dispatch("warm-up"); err != nil {
		t.Fatal(err)
	}
	headBefore, err := store.LastPosition(ctx)
	if err != nil {
		t.Fatal(err)
	}

	kill.Store(true)
	_, err = dispatch("cmd-killed")
	kill.Store(false)
	if err == nil {
		t.Fatal("dispatch on a killed connection succeeded")
	}
	var re *orchestrator.ReducerError
	if !errors.As(err, &re) || re.Reducer != "tallies" {
		t.Logf("error (not from the reducer): %v", err)
	}
	t.Logf("caller saw: %v", err)

	// Nothing partial: no event, no read-model change, no command record.
	if h, _ := store.LastPosition(ctx); h != headBefore {
		t.Errorf("log head moved from %d to %d", headBefore, h)
	}
	if v, _ := store.StreamVersion(ctx, "tally-a"); v != 1 {
		t.Errorf("stream version %d, want 1", v)
	}
	var total int64
	if err := pool.QueryRow(ctx, `SELECT total FROM tallies WHERE id = 'a'`).Scan(&total); err != nil || total != 5 {
		t.Errorf("total %d (%v), want 5", total, err)
	}
	var records int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM eventfold.commands WHERE command_id = 'cmd-killed'`).Scan(&records); err != nil || records != 0 {
		t.Errorf("%d command records for the killed command (%v)", records, err)
	}

	// Re-dispatching the same id is safe: it applies once...
	res, err := dispatch("cmd-killed")
	if err != nil || res.Duplicate || len(res.Events) != 1 {
		t.Fatalf("re-dispatch: %+v %v", res, err)
	}
	// ...and only once.
	h := handled.Load()
	again, err := dispatch("cmd-killed")
	if err != nil || !again.Duplicate || again.Events[0].ID != res.Events[0].ID || handled.Load() != h {
		t.Fatalf("third dispatch: %+v %v", again, err)
	}
	if err := pool.QueryRow(ctx, `SELECT total FROM tallies WHERE id = 'a'`).Scan(&total); err != nil || total != 10 {
		t.Errorf("total %d (%v), want 10", total, err)
	}
	if v, _ := store.StreamVersion(ctx, "tally-a"); v != 2 {
		t.Errorf("stream version %d, want 2", v)
	}
}
