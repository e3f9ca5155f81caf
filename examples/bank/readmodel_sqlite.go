package bank

import (
	"context"
	"database/sql"
	"errors"

	"github.com/eventfold/eventfold/examples/bank/internal/bankdb/sqlitebank"
)

// sqliteModel is the read model on SQLite (queries/sqlite/bank.sql).
type sqliteModel struct{}

var sqliteQueries = sqlitebank.New()

func (sqliteModel) insertAccount(ctx context.Context, db DB, a Account) error {
	return sqliteQueries.InsertAccount(ctx, db, sqlitebank.InsertAccountParams{AccountID: a.AccountID, Owner: a.Owner, Number: a.Number, Version: a.Version})
}

func (sqliteModel) getAccount(ctx context.Context, db DB, id string) (Account, bool, error) {
	row, err := sqliteQueries.GetAccount(ctx, db, id)
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, err
	}
	return Account(row), true, nil
}

func (sqliteModel) applyMovement(ctx context.Context, db DB, id string, delta, version int64) error {
	n, err := sqliteQueries.ApplyMovement(ctx, db, sqlitebank.ApplyMovementParams{Delta: delta, Version: version, AccountID: id})
	return movedRows(n, err, id)
}

func (sqliteModel) insertEntry(ctx context.Context, db DB, e Entry) error {
	return sqliteQueries.InsertLedgerEntry(ctx, db, sqlitebank.InsertLedgerEntryParams{
		AccountID: e.AccountID, Version: e.Version, GlobalPosition: e.GlobalPosition,
		Kind: e.Kind, Amount: e.Amount, Counterparty: nullString(e.Counterparty),
	})
}

func (sqliteModel) listAccounts(ctx context.Context, db DB) ([]Account, error) {
	rows, err := sqliteQueries.ListAccounts(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make([]Account, len(rows))
	for i, r := range rows {
		out[i] = Account(r)
	}
	return out, nil
}

func (sqliteModel) statement(ctx context.Context, db DB, id string) ([]Entry, error) {
	rows, err := sqliteQueries.ListLedger(ctx, db, id)
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
