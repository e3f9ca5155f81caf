package bank

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
)

// App is the bank: an orchestrator with the bank's handlers and reducers
// registered, and the read models' queries.
type App struct {
	// Orchestrator dispatches the bank's commands; add your own middleware
	// with Orchestrator.Use.
	Orchestrator *orchestrator.Orchestrator[*sql.Tx]
	store        *eventfold.Store[*sql.Tx]
	rm           readModel
}

// New builds the bank on store. cfg configures the orchestrator (may be
// nil). Payload validation (the commands' Validate methods) is installed as
// middleware.
func New(store *eventfold.Store[*sql.Tx], cfg *orchestrator.Config) (*App, error) {
	rm, err := readModelFor(store.Dialect())
	if err != nil {
		return nil, err
	}
	o := orchestrator.New(store, cfg)
	a := &App{Orchestrator: o, store: store, rm: rm}
	o.Use(orchestrator.ValidateCommands())

	orchestrator.Handle(o, CommandOpenAccount, a.handleOpenAccount)
	orchestrator.Handle(o, CommandDeposit, a.handleDeposit)
	orchestrator.Handle(o, CommandWithdraw, a.handleWithdraw)
	orchestrator.Handle(o, CommandTransfer, a.handleTransfer)

	// Read model 1: balances.
	orchestrator.Reduce(o, EventAccountOpened, a.openAccount, orchestrator.WithName("balances"))
	for _, t := range []string{EventMoneyDeposited, EventMoneyWithdrawn, EventTransferSent, EventTransferReceived} {
		orchestrator.ReduceEvent(o, t, a.balanceMovement(func(ev eventfold.Event) (int64, error) {
			amount, _, err := movement(ev)
			return amount, err
		}), orchestrator.WithName("balances"))
		// Read model 2: the account statement.
		orchestrator.ReduceEvent(o, t, a.statementLine, orchestrator.WithName("statement"))
	}
	return a, nil
}

// Dispatch dispatches a bank command (OpenAccount, Deposit, Withdraw or
// Transfer) under its name. id, when not empty, makes it idempotent.
func (a *App) Dispatch(ctx context.Context, id string, cmd any) (*orchestrator.Result, error) {
	var name string
	switch cmd.(type) {
	case OpenAccount:
		name = CommandOpenAccount
	case Deposit:
		name = CommandDeposit
	case Withdraw:
		name = CommandWithdraw
	case Transfer:
		name = CommandTransfer
	default:
		return nil, fmt.Errorf("%w: %T is not a bank command", orchestrator.ErrInvalidCommand, cmd)
	}
	return a.Orchestrator.Dispatch(ctx, orchestrator.Command{Name: name, Payload: cmd, Envelope: orchestrator.Envelope{ID: id}})
}

// Account is a row of the balances read model.
type Account struct {
	AccountID string
	Owner     string
	Number    string
	Balance   int64
	// Version is the account stream's version the row reflects.
	Version int64
}

// Entry is a line of an account statement.
type Entry struct {
	AccountID      string
	Version        int64
	GlobalPosition int64
	Kind           string
	Amount         int64
	Counterparty   string
}

// Accounts lists every account of the read model.
func (a *App) Accounts(ctx context.Context) ([]Account, error) {
	return a.rm.listAccounts(ctx, a.store.Driver().DB())
}

// Account reads one account from the read model; found is false when it
// does not exist.
func (a *App) Account(ctx context.Context, id string) (acc Account, found bool, err error) {
	return a.rm.getAccount(ctx, a.store.Driver().DB(), id)
}

// Statement lists an account's money movements in order.
func (a *App) Statement(ctx context.Context, accountID string) ([]Entry, error) {
	return a.rm.statement(ctx, a.store.Driver().DB(), accountID)
}

func unmarshal(ev eventfold.Event, v any) error {
	if err := json.Unmarshal(ev.Data, v); err != nil {
		return fmt.Errorf("decode %s: %w", ev.Type, err)
	}
	return nil
}

// ResetReadModels empties the bank's read models, in tx, before they are
// rebuilt from the log (bankctl replay).
func (a *App) ResetReadModels(ctx context.Context, tx *sql.Tx) error {
	for _, table := range []string{"bank_ledger", "bank_accounts"} {
		if _, err := tx.ExecContext(ctx, "DELETE FROM "+table); err != nil {
			return fmt.Errorf("bank: reset %s: %w", table, err)
		}
	}
	return nil
}
