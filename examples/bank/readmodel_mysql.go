package bank

import (
	"context"
	"database/sql"
	"errors"

	"github.com/eventfold/eventfold/examples/bank/internal/bankdb/mysqlbank"
)

// mysqlModel is the read model on MySQL and MariaDB (queries/mysql/bank.sql).
type mysqlModel struct{}

var mysqlQueries = mysqlbank.New()

func (mysqlModel) insertAccount(ctx context.Context, db DB, a Account) error {
	return mysqlQueries.InsertAccount(ctx, db, mysqlbank.InsertAccountParams{AccountID: a.AccountID, Owner: a.Owner, Number: a.Number, Version: a.Version})
}

func (mysqlModel) getAccount(ctx context.Context, db DB, id string) (Account, bool, error) {
	row, err := mysqlQueries.GetAccount(ctx, db, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, err
	}
	return Account(row), true, nil
}

func (mysqlModel) applyMovement(ctx context.Context, db DB, id string, delta, version int64) error {
	n, err := mysqlQueries.ApplyMovement(ctx, db, mysqlbank.ApplyMovementParams{Delta: delta, Version: version, AccountID: id})
	return movedRows(n, err, id)
}

func (mysqlModel) insertEntry(ctx context.Context, db DB, e Entry) error {
	return mysqlQueries.InsertLedgerEntry(ctx, db, mysqlbank.InsertLedgerEntryParams{
		AccountID: e.AccountID, Version: e.Version, GlobalPosition: e.GlobalPosition,
		Kind: e.Kind, Amount: e.Amount, Counterparty: nullString(e.Counterparty),
	})
}

func (mysqlModel) listAccounts(ctx context.Context, db DB) ([]Account, error) {
	rows, err := mysqlQueries.ListAccounts(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make([]Account, len(rows))
	for i, r := range rows {
		out[i] = Account(r)
	}
	return out, nil
}

func (mysqlModel) statement(ctx context.Context, db DB, id string) ([]Entry, error) {
	rows, err := mysqlQueries.ListLedger(ctx, db, id)
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
