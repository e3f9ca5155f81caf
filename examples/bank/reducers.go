package bank

import (
	"context"
	"database/sql"
	"strings"

	"github.com/eventfold/eventfold"
)

// accountOf recovers the account id from an account stream id.
func accountOf(ev eventfold.Event) string { return strings.TrimPrefix(ev.StreamID, "account-") }

// Reducers of the "balances" read model (bank_accounts).

func (a *App) openAccount(ctx context.Context, tx *sql.Tx, ev eventfold.Event, e AccountOpened) error {
	return a.rm.insertAccount(ctx, tx, Account{AccountID: accountOf(ev), Owner: e.Owner, Number: e.Number, Version: ev.StreamVersion})
}

func (a *App) balanceMovement(delta func(eventfold.Event) (int64, error)) func(context.Context, *sql.Tx, eventfold.Event) error {
	return func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
		d, err := delta(ev)
		if err != nil {
			return err
		}
		return a.rm.applyMovement(ctx, tx, accountOf(ev), d, ev.StreamVersion)
	}
}

// Reducer of the "statement" read model (bank_ledger): one line per money
// movement.
func (a *App) statementLine(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
	amount, counterparty, err := movement(ev)
	if err != nil {
		return err
	}
	return a.rm.insertEntry(ctx, tx, Entry{
		AccountID: accountOf(ev), Version: ev.StreamVersion, GlobalPosition: ev.GlobalPosition,
		Kind: ev.Type, Amount: amount, Counterparty: counterparty,
	})
}

// movement decodes a money event into its signed amount and counterparty.
func movement(ev eventfold.Event) (amount int64, counterparty string, err error) {
	switch ev.Type {
	case EventMoneyDeposited:
		var e MoneyDeposited
		err = unmarshal(ev, &e)
		return e.Amount, "", err
	case EventMoneyWithdrawn:
		var e MoneyWithdrawn
		err = unmarshal(ev, &e)
		return -e.Amount, "", err
	case EventTransferSent:
		var e TransferSent
		err = unmarshal(ev, &e)
		return -e.Amount, e.To, err
	case EventTransferReceived:
		var e TransferReceived
		err = unmarshal(ev, &e)
		return e.Amount, e.From, err
	}
	return 0, "", nil
}
