package bank

import (
	"context"
	"database/sql"
	"errors"

	"github.com/eventfold/eventfold/examples/bank/internal/bankdb/pgbank"
)

// pgModel is the read model on PostgreSQL (queries/postgres/bank.sql).
type pgModel struct{}

var pgQueries = pgbank.New()

func (pgModel) insertAccount(ctx context.Context, db DB, a Account) error {
	return pgQueries.InsertAccount(ctx, db, pgbank.InsertAccountParams{AccountID: a.AccountID, Owner: a.Owner, Number: a.Number, Version: a.Version})
}

func (pgModel) getAccount(ctx context.Context, db DB, id string) (Account, bool, error) {
	row, err := pgQueries.GetAccount(ctx, db, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, err
	}
	return Account(row), true, nil
}

func (pgModel) applyMovement(ctx context.Context, db DB, id string, delta, version int64) error {
	n, err := pgQueries.ApplyMovement(ctx, db, pgbank.ApplyMovementParams{Delta: delta, Version: version, AccountID: id})
	return movedRows(n, err, id)
}

func (pgModel) insertEntry(ctx context.Context, db DB, e Entry) error {
	return pgQueries.InsertLedgerEntry(ctx, db, pgbank.InsertLedgerEntryParams{
		AccountID: e.AccountID, Version: e.Version, GlobalPosition: e.GlobalPosition,
		Kind: e.Kind, Amount: e.Amount, Counterparty: nullString(e.Counterparty),
	})
}

func (pgModel) listAccounts(ctx context.Context, db DB) ([]Account, error) {
	rows, err := pgQueries.ListAccounts(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make([]Account, len(rows))
	for i, r := range rows {
		out[i] = Account(r)
	}
	return out, nil
}

func (pgModel) statement(ctx context.Context, db DB, id string) ([]Entry, error) {
	rows, err := pgQueries.ListLedger(ctx, db, id)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = Entry{AccountID: r.AccountID, Version: r.Version, GlobalPosition: r.GlobalPosition,
			Kind: r.Kind, Amount: r.Amount, Counterparty: r.Counterparty.String}
	}
	return out, nil
}
