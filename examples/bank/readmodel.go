package bank

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventfold/eventfold"
)

// DB is what read-model queries run on: *sql.Tx inside a dispatch, *sql.DB
// for queries outside one. It is the shape of sqlc's generated DBTX.
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// readModel is the bank's read-model access, one implementation per
// dialect, each a thin layer over that dialect's sqlc-generated queries
// (internal/bankdb/<dialect>bank).
type readModel interface {
	insertAccount(ctx context.Context, db DB, a Account) error
	getAccount(ctx context.Context, db DB, id string) (Account, bool, error)
	// applyMovement adds delta to the balance and records the stream
	// version; it fails when the account row does not exist.
	applyMovement(ctx context.Context, db DB, id string, delta, version int64) error
	insertEntry(ctx context.Context, db DB, e Entry) error
	listAccounts(ctx context.Context, db DB) ([]Account, error)
	statement(ctx context.Context, db DB, id string) ([]Entry, error)
}

func readModelFor(d eventfold.Dialect) (readModel, error) {
	switch d {
	case eventfold.Postgres:
		return pgModel{}, nil
	case eventfold.MySQL:
		return mysqlModel{}, nil
	case eventfold.SQLite:
		return sqliteModel{}, nil
	}
	return nil, fmt.Errorf("bank: no read-model queries for %s (the example runs on postgres, mysql and sqlite)", d)
}

func movedRows(n int64, err error, id string) error {
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("account %q is not in the read model", id)
	}
	return nil
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
