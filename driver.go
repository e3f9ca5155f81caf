package eventfold

import (
	"context"
	"database/sql"
	"fmt"
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

// Ops is the set of store operations every dialect implements, bound to a
// pool or to one transaction. Inputs are already validated by Store.
// Packages that need more (checkpoints, idempotency records, archiving)
// declare their own small interface and type-assert an Ops value to it.
type Ops interface {
	// Append appends events to one stream after checking expected, and
	// returns them as recorded. A version mismatch returns
	// *WrongExpectedVersionError; a duplicate event id ErrDuplicateEventID.
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events []EventData) ([]Event, error)
	// ReadStream reads up to limit events of one stream, forward from
	// version from (inclusive), or backward from it when backward is set
	// (from < 1 then means the stream's last event).
	ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]Event, error)
	// ReadAll reads up to limit events with GlobalPosition >= from, in
	// position order, only up to the gap-free horizon: an event that a
	// still-running transaction may yet commit is never passed over.
	ReadAll(ctx context.Context, from int64, limit int) ([]Event, error)
	// Head returns the highest position at or below the gap-free horizon
	// (0 for an empty log).
	Head(ctx context.Context) (int64, error)
	// LastPosition returns the highest committed position, horizon or not
	// (0 for an empty log). It equals Head except on PostgreSQL, where the
	// difference is the lag that running transactions cause.
	LastPosition(ctx context.Context) (int64, error)
	// StreamVersion returns a stream's current version (0: no stream).
	StreamVersion(ctx context.Context, streamID string) (int64, error)
	// Exec runs a statement that returns no rows (savepoints and the like).
	Exec(ctx context.Context, query string, args ...any) error
}
