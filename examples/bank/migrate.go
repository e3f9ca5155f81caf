package bank

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"

	"github.com/eventfold/eventfold"
)

// MigrationTable is the goose version table of the bank's read models,
// apart from eventfold's own (eventfold_goose_version) and the user's.
const MigrationTable = "bank_goose_version"

//go:embed sql
var migrations embed.FS

// Migrate applies the read-model migrations (examples/bank/sql/<dialect>)
// to db. Apply eventfold's own migrations first (Store.Migrate).
func Migrate(ctx context.Context, db *sql.DB, d eventfold.Dialect) error {
	var dir string
	var gd goose.Dialect
	switch d {
	case eventfold.Postgres:
		dir, gd = "sql/postgres", goose.DialectPostgres
	case eventfold.MySQL:
		dir, gd = "sql/mysql", goose.DialectMySQL
	case eventfold.SQLite:
		dir, gd = "sql/sqlite", goose.DialectSQLite3
	case eventfold.SQLServer:
		dir, gd = "sql/mssql", goose.DialectMSSQL
	default:
		return fmt.Errorf("bank: migrate: %w", eventfold.ErrUnknownDialect)
	}
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(gd, db, fsys, goose.WithTableName(MigrationTable), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("bank: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("bank: migrate %s: %w", d, err)
	}
	return nil
}
