package orchestrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// openExampleStore opens a fresh SQLite store in a temporary directory.
func openExampleStore(ctx context.Context) (*eventfold.Store[*sql.Tx], func()) {
	dir, err := os.MkdirTemp("", "orchestrator-example")
	if err != nil {
		panic(err)
	}
	drv, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(dir, "example.db"))
	if err != nil {
		panic(err)
	}
	store := eventfold.New(drv, nil)
	if err := store.Migrate(ctx); err != nil {
		panic(err)
	}
	// A read model of our own.
	if _, err := drv.DB().ExecContext(ctx, `CREATE TABLE todo (id TEXT PRIMARY KEY, title TEXT NOT NULL, done INTEGER NOT NULL)`); err != nil {
		panic(err)
	}
	return store, func() { store.Close(); os.RemoveAll(dir) }
}

type AddTodo struct {
	ID, Title string
}

type TodoAdded struct {
	Title string `json:"title"`
}

var ErrDuplicateTodo = errors.New("todo exists")

// Dispatch a command: the handler validates against the read model and
// emits an event; a reducer updates the read model; both in one
// transaction.
func Example() {
	ctx := context.Background()
	store, done := openExampleStore(ctx)
	defer done()

	o := orchestrator.New(store, nil)
	orchestrator.Handle(o, "AddTodo", func(ctx context.Context, tx *sql.Tx, c AddTodo) ([]orchestrator.Emit, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM todo WHERE id = ?`, c.ID).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, ErrDuplicateTodo
		}
		return []orchestrator.Emit{{
			Stream: "todo-" + c.ID, Expected: eventfold.NoStream,
			Type: "TodoAdded", Data: TodoAdded{Title: c.Title},
		}}, nil
	})
	orchestrator.Reduce(o, "TodoAdded", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event, e TodoAdded) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO todo (id, title, done) VALUES (?, ?, 0)`, ev.StreamID[len("todo-"):], e.Title)
		return err
	})

	res, err := o.Dispatch(ctx, orchestrator.Command{Name: "AddTodo", Payload: AddTodo{ID: "1", Title: "write docs"}})
	if err != nil {
		panic(err)
	}
	for _, ev := range res.Events {
		fmt.Println(ev.StreamID, ev.StreamVersion, ev.Type, string(ev.Data))
	}

	_, err = o.Dispatch(ctx, orchestrator.Command{Name: "AddTodo", Payload: AddTodo{ID: "1", Title: "again"}})
	var he *orchestrator.HandlerError
	fmt.Println(errors.Is(err, ErrDuplicateTodo), errors.As(err, &he), he.Command)

	var title string
	_ = store.Driver().DB().QueryRowContext(ctx, `SELECT title FROM todo WHERE id = '1'`).Scan(&title)
	fmt.Println("read model:", title)
	// Output:
	// todo-1 1 TodoAdded {"title":"write docs"}
	// true true AddTodo
	// read model: write docs
}

// Middleware wraps every dispatch: here an authorisation check that
// refuses anonymous commands, and a metrics counter.
func ExampleOrchestrator_Use() {
	ctx := context.Background()
	store, done := openExampleStore(ctx)
	defer done()
	o := orchestrator.New(store, nil)
	orchestrator.HandleAny(o, "Ping", func(context.Context, *sql.Tx, orchestrator.Command) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "pings", Expected: eventfold.Any, Type: "Pinged", Data: struct{}{}}}, nil
	})

	errAnonymous := errors.New("who are you?")
	counts := map[string]int{}
	o.Use(
		orchestrator.Before(func(_ context.Context, cmd orchestrator.Command) error {
			if cmd.Envelope.Metadata["user"] == nil {
				return errAnonymous
			}
			return nil
		}),
		func(next orchestrator.Dispatcher) orchestrator.Dispatcher { // metrics
			return func(ctx context.Context, cmd orchestrator.Command) (*orchestrator.Result, error) {
				res, err := next(ctx, cmd)
				counts[fmt.Sprintf("%s ok=%v", cmd.Name, err == nil)]++
				return res, err
			}
		},
	)

	_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Ping"})
	fmt.Println(err)
	res, _ := o.Dispatch(ctx, orchestrator.Command{Name: "Ping", Envelope: orchestrator.Envelope{
		ID: "ping-1", Metadata: map[string]any{"user": "ada"},
	}})
	fmt.Println(string(res.Events[0].Metadata))
	fmt.Println(counts)
	// Output:
	// who are you?
	// {"causation_id":"ping-1","command":"Ping","correlation_id":"ping-1","user":"ada"}
	// map[Ping ok=true:1]
}

// The same command id dispatched twice applies once; the second dispatch
// returns the first one's events.
func ExampleEnvelope_idempotency() {
	ctx := context.Background()
	store, done := openExampleStore(ctx)
	defer done()
	o := orchestrator.New(store, nil)
	orchestrator.HandleAny(o, "Ping", func(context.Context, *sql.Tx, orchestrator.Command) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "pings", Expected: eventfold.Any, Type: "Pinged", Data: struct{}{}}}, nil
	})
	cmd := orchestrator.Command{Name: "Ping", Envelope: orchestrator.Envelope{ID: "request-7"}}
	first, _ := o.Dispatch(ctx, cmd)
	second, _ := o.Dispatch(ctx, cmd)
	v, _ := store.StreamVersion(ctx, "pings")
	fmt.Println(first.Duplicate, second.Duplicate, first.Events[0].ID == second.Events[0].ID, v)
	// Output:
	// false true true 1
}
