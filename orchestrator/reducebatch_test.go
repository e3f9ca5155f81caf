package orchestrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
)

type emitTypes struct {
	Types []string `json:"types"`
	Fail  bool     `json:"fail"`
}

func TestReduceBatch(t *testing.T) {
	ctx := context.Background()
	store := testdb.SQLStore(t, eventfold.SQLite)
	o := orchestrator.New(store, nil)
	var calls []string
	orchestrator.Handle(o, "Emit", func(ctx context.Context, tx *sql.Tx, c emitTypes) ([]orchestrator.Emit, error) {
		var out []orchestrator.Emit
		for _, typ := range c.Types {
			out = append(out, orchestrator.Emit{Stream: "s", Expected: eventfold.Any, Type: typ, Data: map[string]bool{"fail": c.Fail}})
		}
		return out, nil
	})
	orchestrator.ReduceEvent(o, "A", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		calls = append(calls, fmt.Sprintf("plain:A%d", ev.StreamVersion))
		return nil
	}, orchestrator.WithName("plain"))
	orchestrator.ReduceBatch(o, "A", func(ctx context.Context, tx *sql.Tx, evs []eventfold.Event) error {
		s := "batch:A"
		for _, ev := range evs {
			s += fmt.Sprint(ev.StreamVersion)
		}
		calls = append(calls, s)
		if string(evs[0].Data) == `{"fail":true}` {
			return errors.New("batch refused")
		}
		return nil
	}, orchestrator.WithName("batch"))
	orchestrator.ReduceEvent(o, "B", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		calls = append(calls, fmt.Sprintf("plain:B%d", ev.StreamVersion))
		return nil
	})

	res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Emit", Payload: emitTypes{Types: []string{"A", "A", "A", "B", "A", "A"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"plain:A1", "plain:A2", "plain:A3", "batch:A123", "plain:B4", "plain:A5", "plain:A6", "batch:A56"}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("dispatch ran %v, want %v", calls, want)
	}

	// A replay of the same events through ApplyAll runs the same calls.
	calls = nil
	if err := store.InTx(ctx, func(tx *sql.Tx) error { return o.ApplyAll(ctx, tx, res.Events) }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("ApplyAll ran %v, want %v", calls, want)
	}
	// Apply, one event at a time, hands the batch reducer runs of one.
	calls = nil
	if err := store.InTx(ctx, func(tx *sql.Tx) error { return o.Apply(ctx, tx, res.Events[0]) }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"plain:A1", "batch:A1"}; !reflect.DeepEqual(calls, want) {
		t.Fatalf("Apply ran %v, want %v", calls, want)
	}

	// A failing batch reducer rolls the whole command back, and says so.
	head, _ := store.LastPosition(ctx)
	_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Emit", Payload: emitTypes{Types: []string{"A", "A"}, Fail: true}})
	var re *orchestrator.ReducerError
	if !errors.As(err, &re) || re.Reducer != "batch" || re.EventType != "A" {
		t.Fatalf("failing batch reducer: %v", err)
	}
	if h, _ := store.LastPosition(ctx); h != head {
		t.Fatalf("a failed batch reducer left events behind: last position %d, was %d", h, head)
	}
}
