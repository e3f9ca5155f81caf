package eventfold

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	migrations "github.com/eventfold/eventfold/sql"
)

// MigrationTable is the goose version table eventfold uses, so that a
// user's own goose_db_version table is never touched.
const MigrationTable = "eventfold_goose_version"

// migrationLockID is the advisory lock key eventfold's migrations take
// (crc32 of "eventfold"), distinct from goose's default so that a user's
// own goose migrations never wait on ours.
const migrationLockID = 0x1f3f0d4e

// MigrationsFS returns the embedded migrations of one dialect: the same
// files as sql/<dialect>/ in the repository.
func MigrationsFS(d Dialect) (fs.FS, error) {
	dir, _, err := gooseDialect(d)
	if err != nil {
		return nil, err
	}
	return fs.Sub(migrations.FS, dir)
}

func gooseDialect(d Dialect) (dir string, gd goose.Dialect, err error) {
	switch d {
	case Postgres:
		return "postgres", goose.DialectPostgres, nil
	case MySQL:
		return "mysql", goose.DialectMySQL, nil
	case SQLite:
		return "sqlite", goose.DialectSQLite3, nil
	case SQLServer:
		return "mssql", goose.DialectMSSQL, nil
	}
	return "", "", &unknownDialectError{name: string(d)}
}

// NewMigrator returns a goose Provider over eventfold's migrations for
// dialect d, recording versions in MigrationTable. Use it for status and
// down migrations; Store.Migrate covers the common case.
func NewMigrator(d Dialect, db *sql.DB) (*goose.Provider, error) {
	fsys, err := MigrationsFS(d)
	if err != nil {
		return nil, err
	}
	_, gd, _ := gooseDialect(d)
	opts := []goose.ProviderOption{
		goose.WithTableName(MigrationTable),
		goose.WithDisableGlobalRegistry(true),
	}
	// Two processes migrating at once (say, two replicas starting) must not
	// race: lock where goose can. SQLite has one writer anyway; goose has no
	// locker for SQL Server.
	switch d {
	case Postgres:
		l, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("eventfold: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(l))
	case MySQL:
		l, err := lock.NewMySQLTableLocker(lock.WithTableName(MigrationTable+"_lock"), lock.WithTableLockID(migrationLockID), lock.WithTableLockTimeout(time.Second, 300))
		if err != nil {
			return nil, fmt.Errorf("eventfold: migration lock: %w", err)
		}
		opts = append(opts, goose.WithLocker(l))
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("eventfold: migrations for %s: %w", d, err)
	}
	return p, nil
}

// Migrate applies every pending migration, then checks and, where needed,
// repairs the positions (CheckPositions): a PostgreSQL database restored
// into a new cluster is made safe to append to before anything else runs.
// A repair is logged to Config.Logger.
func (s *Store[TTx]) Migrate(ctx context.Context) error {
	p, err := NewMigrator(s.driver.Dialect(), s.driver.DB())
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("eventfold: migrate %s: %w", s.driver.Dialect(), err)
	}
	if _, err := s.CheckPositions(ctx, true); err != nil {
		return fmt.Errorf("eventfold: migrate %s: %w", s.driver.Dialect(), err)
	}
	return nil
}

// PositionsMigration is the first PostgreSQL migration version that has
// eventfold.check_positions; CheckPositions needs at least this schema.
const PositionsMigration = 6
