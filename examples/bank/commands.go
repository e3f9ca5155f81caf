package bank

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/orchestrator"
)

// Command names.
const (
	CommandOpenAccount = "OpenAccount"
	CommandDeposit     = "Deposit"
	CommandWithdraw    = "Withdraw"
	CommandTransfer    = "Transfer"
)

// Domain errors. Handlers return them (wrapped in orchestrator.HandlerError
// by the orchestrator); match them with errors.Is. They are rejections
// (orchestrator.Reject): an HTTP endpoint shows them to the client (422),
// unlike a database failure.
var (
	ErrAccountExists     = orchestrator.Reject(errors.New("bank: account already exists"))
	ErrNoAccount         = orchestrator.Reject(errors.New("bank: no such account"))
	ErrInsufficientFunds = orchestrator.Reject(errors.New("bank: insufficient funds"))
	ErrInvalidAmount     = orchestrator.Reject(errors.New("bank: amount must be positive"))
	// ErrBalanceTooLarge refuses a deposit or transfer that would carry a
	// balance past the largest amount the read model holds (an int64 of
	// cents): the reducer's "balance + amount" would overflow.
	ErrBalanceTooLarge = orchestrator.Reject(errors.New("bank: the balance would exceed the largest amount an account can hold"))
)

// OpenAccount opens an account with a zero balance.
type OpenAccount struct {
	AccountID string `json:"account_id"`
	Owner     string `json:"owner"`
	// Number must be unique across accounts (the read model enforces it).
	Number string `json:"number"`
}

// Validate implements orchestrator.Validator.
func (c OpenAccount) Validate() error {
	if c.AccountID == "" || c.Owner == "" || c.Number == "" {
		return errors.New("account_id, owner and number are required")
	}
	return nil
}

// Deposit puts Amount cents into an account.
type Deposit struct {
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
}

// Validate implements orchestrator.Validator.
func (c Deposit) Validate() error { return positive(c.Amount) }

// Withdraw takes Amount cents out of an account, if the balance covers it.
type Withdraw struct {
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
}

// Validate implements orchestrator.Validator.
func (c Withdraw) Validate() error { return positive(c.Amount) }

// Transfer moves Amount cents between two accounts: two events on two
// streams, committed together or not at all.
type Transfer struct {
	TransferID string `json:"transfer_id"`
	From       string `json:"from"`
	To         string `json:"to"`
	Amount     int64  `json:"amount"`
}

// Validate implements orchestrator.Validator.
func (c Transfer) Validate() error {
	if c.From == c.To {
		return errors.New("cannot transfer to the same account")
	}
	return positive(c.Amount)
}

func positive(amount int64) error {
	if amount <= 0 {
		return fmt.Errorf("%w (got %d)", ErrInvalidAmount, amount)
	}
	return nil
}

// fits refuses an amount that would carry acc's balance past the largest
// int64: the reducer's "balance + amount" would overflow (SQLite turned
// the sum into a REAL, which no later read could scan; PostgreSQL and
// MariaDB refused the UPDATE, a 500 for a bad request).
func fits(acc Account, amount int64) error {
	if acc.Balance > math.MaxInt64-amount {
		return fmt.Errorf("%w: account %q has %s, adding %s", ErrBalanceTooLarge, acc.AccountID, Money(acc.Balance), Money(amount))
	}
	return nil
}

// account reads an account from the read model inside tx.
func (a *App) account(ctx context.Context, tx *sql.Tx, id string) (Account, error) {
	acc, found, err := a.rm.getAccount(ctx, tx, id)
	if err != nil {
		return Account{}, err
	}
	if !found {
		return Account{}, fmt.Errorf("%w: %q", ErrNoAccount, id)
	}
	return acc, nil
}

func (a *App) handleOpenAccount(ctx context.Context, tx *sql.Tx, c OpenAccount) ([]orchestrator.Emit, error) {
	if _, found, err := a.rm.getAccount(ctx, tx, c.AccountID); err != nil {
		return nil, err
	} else if found {
		return nil, fmt.Errorf("%w: %q", ErrAccountExists, c.AccountID)
	}
	// The number's uniqueness is left to the read model's UNIQUE
	// constraint (see the package documentation).
	return []orchestrator.Emit{{
		Stream: StreamID(c.AccountID), Expected: eventfold.NoStream,
		Type: EventAccountOpened, Data: AccountOpened(c),
	}}, nil
}

func (a *App) handleDeposit(ctx context.Context, tx *sql.Tx, c Deposit) ([]orchestrator.Emit, error) {
	acc, err := a.account(ctx, tx, c.AccountID)
	if err != nil {
		return nil, err
	}
	if err := fits(acc, c.Amount); err != nil {
		return nil, err
	}
	return []orchestrator.Emit{{
		Stream: StreamID(c.AccountID), Expected: eventfold.Exact(acc.Version),
		Type: EventMoneyDeposited, Data: MoneyDeposited{Amount: c.Amount},
	}}, nil
}

func (a *App) handleWithdraw(ctx context.Context, tx *sql.Tx, c Withdraw) ([]orchestrator.Emit, error) {
	acc, err := a.account(ctx, tx, c.AccountID)
	if err != nil {
		return nil, err
	}
	if acc.Balance < c.Amount {
		return nil, fmt.Errorf("%w: account %q has %s, withdrawal of %s", ErrInsufficientFunds, c.AccountID, Money(acc.Balance), Money(c.Amount))
	}
	return []orchestrator.Emit{{
		Stream: StreamID(c.AccountID), Expected: eventfold.Exact(acc.Version),
		Type: EventMoneyWithdrawn, Data: MoneyWithdrawn{Amount: c.Amount},
	}}, nil
}

func (a *App) handleTransfer(ctx context.Context, tx *sql.Tx, c Transfer) ([]orchestrator.Emit, error) {
	from, err := a.account(ctx, tx, c.From)
	if err != nil {
		return nil, err
	}
	to, err := a.account(ctx, tx, c.To)
	if err != nil {
		return nil, err
	}
	if from.Balance < c.Amount {
		return nil, fmt.Errorf("%w: account %q has %s, transfer of %s", ErrInsufficientFunds, c.From, Money(from.Balance), Money(c.Amount))
	}
	if err := fits(to, c.Amount); err != nil {
		return nil, err
	}
	id := c.TransferID
	if id == "" {
		cmd, _ := orchestrator.CommandFrom(ctx)
		id = cmd.Envelope.ID
	}
	return []orchestrator.Emit{
		{Stream: StreamID(c.From), Expected: eventfold.Exact(from.Version),
			Type: EventTransferSent, Data: TransferSent{TransferID: id, To: c.To, Amount: c.Amount}},
		{Stream: StreamID(c.To), Expected: eventfold.Exact(to.Version),
			Type: EventTransferReceived, Data: TransferReceived{TransferID: id, From: c.From, Amount: c.Amount}},
	}, nil
}

// Money formats an amount in cents as units with two decimals ("30.00").
func Money(cents int64) string {
	sign := ""
	if cents < 0 {
		sign, cents = "-", -cents
	}
	return fmt.Sprintf("%s%d.%02d", sign, cents/100, cents%100)
}
