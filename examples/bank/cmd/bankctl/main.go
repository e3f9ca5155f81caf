// Command bankctl is esctl with the bank compiled in: `migrate up` installs
// eventfold's schema and the bank's read-model tables (each with its own
// goose version table), `replay` rebuilds the read models with the bank's
// reducers, `serve` serves its HTTP command endpoint and SSE stream, and
// `demo` runs the demo:
//
//	go run ./examples/bank/cmd/bankctl --dsn sqlite://bank.db migrate up
//	go run ./examples/bank/cmd/bankctl --dsn sqlite://bank.db replay
//	go run ./examples/bank/cmd/bankctl --dsn sqlite://bank.db serve --addr 127.0.0.1:8080
//
// Every other esctl command works the same. This is how a service embeds
// esctl: its own binary, its own migrations and reducers.
package main

import (
	"context"
	"database/sql"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank"
	"github.com/eventfold/eventfold/examples/bank/demo"
)

func main() {
	// SIGTERM too (systemd, Docker, Kubernetes): serve shuts down
	// gracefully, a replay's transaction rolls back, as on Ctrl-C.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(esctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, options()))
}

// options is bankctl's command tree: esctl's, with the bank's migrations,
// reducers, demo and serve.
func options() esctl.Options {
	return esctl.Options{
		Name:        "bankctl",
		ReplayerFor: Replayer,
		Migrations:  &esctl.AppMigrations{Name: "bank", Table: bank.MigrationTable, FS: bank.Migrations},
		Demo:        demo.Run,
		Commands:    []esctl.Command{serveCommand},
	}
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
