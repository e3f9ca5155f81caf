package bank

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/eventfold/eventfold"
)

// MigrationTable is the goose version table of the bank's read models,
// apart from eventfold's own (eventfold_goose_version) and the user's.
const MigrationTable = "bank_goose_version"

//go:embed sql
var migrations embed.FS

// Migrations returns the read-model migrations of one dialect
// (examples/bank/sql/<dialect>): plain goose files, version table
// MigrationTable.
func Migrations(d eventfold.Dialect) (fs.FS, error) {
	dir := map[eventfold.Dialect]string{
		eventfold.Postgres:  "sql/postgres",
		eventfold.MySQL:     "sql/mysql",
		eventfold.SQLite:    "sql/sqlite",
		eventfold.SQLServer: "sql/mssql",
	}[d]
	if dir == "" {
		return nil, fmt.Errorf("bank: migrations: %w", eventfold.ErrUnknownDialect)
	}
	return fs.Sub(migrations, dir)
}

// Migrate applies the read-model migrations (examples/bank/sql/<dialect>)
// to db with eventfold.MigrateApp: under eventfold's migration lock, so
// replicas starting together do not race. Apply eventfold's own migrations
// first (Store.Migrate).
func Migrate(ctx context.Context, db *sql.DB, d eventfold.Dialect) error {
	fsys, err := Migrations(d)
	if err != nil {
		return err
	}
	if _, err := eventfold.MigrateApp(ctx, d, db, fsys, MigrationTable); err != nil {
		return fmt.Errorf("bank: migrate %s: %w", d, err)
	}
	return nil
}
