// Package service is the body of the link-check programs
// (internal/linkcheck/pgxonly, mysqlonly, sqliteonly): a small service
// using the store, the orchestrator and the listener, generic over the
// driver's transaction type so that each program brings only its driver.
// It must link no database driver itself: linkcheck_test.go checks it.
package service

import (
	"context"
	"fmt"
	"io"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
)

// Run migrates store, dispatches one command through the orchestrator
// and reads the event back through the listener, writing what it saw to
// out.
func Run[TTx any](ctx context.Context, store *eventfold.Store[TTx], out io.Writer) error {
	if err := store.Migrate(ctx); err != nil {
		return err
	}
	o := orchestrator.New(store, nil)
	orchestrator.HandleAny(o, "Ping", func(ctx context.Context, tx TTx, c orchestrator.Command) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "linkcheck", Expected: eventfold.Any, Type: "Pinged", Data: map[string]int{"n": 1}}}, nil
	})
	res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Ping"})
	if err != nil {
		return err
	}
	pos := res.Events[0].GlobalPosition
	tailCtx, stop := context.WithCancel(ctx)
	defer stop()
	var seen []string
	err = listener.Tail(tailCtx, store, 0, nil, func(_ context.Context, b listener.Batch) error {
		for _, ev := range b.Events {
			seen = append(seen, ev.Type)
			if ev.GlobalPosition >= pos {
				stop()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "dispatched Ping, read back %v\n", seen)
	return err
}
