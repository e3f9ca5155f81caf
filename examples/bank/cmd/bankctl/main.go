// Command bankctl is esctl with the bank's reducers compiled in, so that
// `bankctl replay` rebuilds the bank's read models from the log:
//
//	go run ./examples/bank/cmd/bankctl --dsn sqlite://bank.db replay
//
// Every other esctl command works the same. This is how a service embeds
// esctl: its own binary, its own reducers.
package main

import (
	"context"
	"database/sql"
	"os"
	"os/signal"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(esctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, esctl.Options{
		Name:        "bankctl",
		ReplayerFor: Replayer,
	}))
}

// Replayer rebuilds the bank's read models with the reducers its
// orchestrator runs on every dispatch.
func Replayer(store *eventfold.Store[*sql.Tx]) (esctl.Replayer, error) {
	app, err := bank.New(store, nil)
	if err != nil {
		return nil, err
	}
	return replayer{app}, nil
}

// replayer hands esctl's pages of events to the orchestrator at once, so
// that batch reducers (orchestrator.ReduceBatch) get whole runs.
type replayer struct{ app *bank.App }

func (r replayer) Reset(ctx context.Context, tx *sql.Tx) error { return r.app.ResetReadModels(ctx, tx) }

func (r replayer) Apply(ctx context.Context, tx *sql.Tx, evs []eventfold.Event) error {
	return r.app.Orchestrator.ApplyAll(ctx, tx, evs)
}
