package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pressly/goose/v3/lock"

	"github.com/eventfold/eventfold/internal/contract"
)

// goose has no migration lock for SQLite: two processes migrating the same
// file at once both read the version table, both run the next migration,
// and one fails ("table ... already exists"). MigrationLocker serialises
// them with SQLite's own file lock, held on a sidecar database
// (FILE-migrate.lock) by a transaction begun with BEGIN IMMEDIATE: a
// second process's BEGIN IMMEDIATE is refused (busy) until the first
// commits or dies, when the operating system releases its lock. The
// database itself is never locked, so goose's own connections migrate it
// freely. The sidecar file stays behind (deleting it while another
// process waits on it would let a third one in).

func init() {
	contract.RegisterMigrationLocker("sqlite", func(db *sql.DB) (lock.Locker, error) {
		// The main file is read now, before goose takes a connection of
		// db for itself (with a one-connection pool, Lock could not get
		// another).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		file, err := mainFile(ctx, db)
		if err != nil {
			return nil, err
		}
		return &migrationLocker{file: file}, nil
	})
}

// MigrationLockSuffix names the sidecar lock file: the database file's
// path followed by it.
const MigrationLockSuffix = "-migrate.lock"

type migrationLocker struct {
	file string // the main database file ("" in memory)
	db   *sql.DB
	conn *sql.Conn
}

// Lock implements lock.Locker: it waits, polling, until it holds the
// sidecar's write lock or ctx ends. An in-memory database needs none.
func (l *migrationLocker) Lock(ctx context.Context, db *sql.DB) error {
	if l.file == "" {
		return nil
	}
	path := l.file + MigrationLockSuffix
	ldb := sql.OpenDB(fileConnector{drv: db.Driver(), dsn: "file:" + uriPath.Replace(path)})
	ldb.SetMaxOpenConns(1)
	conn, err := ldb.Conn(ctx)
	if err != nil {
		ldb.Close()
		return fmt.Errorf("migration lock %s: %w", path, err)
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			l.db, l.conn = ldb, conn
			return nil
		}
		if !isBusy(err) {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(wait):
			continue
		}
		break
	}
	conn.Close()
	ldb.Close()
	return fmt.Errorf("migration lock %s: %w", path, err)
}

// Unlock implements lock.Locker.
func (l *migrationLocker) Unlock(ctx context.Context, _ *sql.DB) error {
	if l.conn == nil {
		return nil
	}
	_, err := l.conn.ExecContext(ctx, "ROLLBACK")
	err = errors.Join(err, l.conn.Close(), l.db.Close())
	l.db, l.conn = nil, nil
	if err != nil {
		return fmt.Errorf("migration unlock: %w", err)
	}
	return nil
}

// mainFile returns the file of the main database ("" in memory).
func mainFile(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int
		var name, file string
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", err
		}
		if name == "main" {
			return file, rows.Err()
		}
	}
	return "", rows.Err()
}

// isBusy tells SQLITE_BUSY (5, and its extended codes) from other errors.
func isBusy(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == 5 {
		return true
	}
	return strings.Contains(err.Error(), "database is locked")
}

// uriPath escapes a file path for a "file:" URI (SQLite decodes %XX and
// ends the path at "?" or "#").
var uriPath = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// fileConnector opens the sidecar with the database's own driver.
type fileConnector struct {
	drv driver.Driver
	dsn string
}

func (c fileConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c fileConnector) Driver() driver.Driver                        { return c.drv }
