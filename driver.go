package eventfold

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventfold/eventfold/internal/contract"
)

// Dialect names a database family.
type Dialect string

// The dialects eventfold supports.
const (
	Postgres  Dialect = "postgres"
	MySQL     Dialect = "mysql" // MySQL 8 and MariaDB 10.6+
	SQLite    Dialect = "sqlite"
	SQLServer Dialect = "sqlserver"
)

// ParseDialect maps a name ("postgres", "postgresql", "pgx", "mysql",
// "mariadb", "sqlite", "sqlite3", "sqlserver", "mssql") to its Dialect.
func ParseDialect(name string) (Dialect, error) {
	switch name {
	case "postgres", "postgresql", "pgx":
		return Postgres, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	case "sqlserver", "mssql":
		return SQLServer, nil
	}
	return "", &unknownDialectError{name: name}
}

type unknownDialectError struct{ name string }

func (e *unknownDialectError) Error() string {
	return fmt.Sprintf("eventfold: unknown database dialect %q (want postgres, mysql, sqlite or sqlserver)", e.name)
}
func (e *unknownDialectError) Is(target error) bool { return target == ErrUnknownDialect }

// Driver connects a Store to one database through one Go driver. TTx is the
// driver's transaction type: pgx.Tx for package pgxdriver, *sql.Tx for
// package sqldriver. Drivers are implemented by this module; the interface
// is exported so that the orchestrator and listener packages, and users'
// own code, can be written once for every driver.
type Driver[TTx any] interface {
	// Dialect tells which SQL the database speaks.
	Dialect() Dialect
	// Begin starts a read-write transaction. On SQLite it takes the write
	// lock at once (BEGIN IMMEDIATE), so that read-then-write transactions
	// cannot deadlock.
	Begin(ctx context.Context) (TTx, error)
	// Commit commits tx.
	Commit(ctx context.Context, tx TTx) error
	// Rollback rolls tx back; rolling back a finished transaction is a no-op.
	Rollback(ctx context.Context, tx TTx) error
	// Ops returns the store operations, run outside any transaction.
	Ops() Ops
	// OpsTx returns the store operations, run inside tx.
	OpsTx(tx TTx) Ops
	// DB returns a database/sql handle on the same database, used for
	// migrations (goose works on *sql.DB).
	DB() *sql.DB
	// Close releases what the driver opened itself (never the caller's pool).
	Close() error
}

// Ops is the whole contract between the store and a dialect: every
// operation a dialect implements, bound to a pool or to one transaction.
// It is declared in one place, internal/contract, where each part is
// documented; every dialect asserts at compile time that it implements
// all of it. Optional parts (commit markers, position checks, NOTIFY) are
// listed by Capabilities and return contract.ErrUnsupported where absent.
// Inputs are already validated by Store.
type Ops = contract.Ops
