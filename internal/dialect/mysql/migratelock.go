package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3/lock"

	"github.com/eventfold/eventfold/internal/contract"
)

// The migration lock. goose's MySQL lock is a row in a lock table, taken
// and renewed (every 5 s, a lease of 30 s) through the pool while goose
// migrates on a connection of its own: with max_open_conns=1 the lock
// waited for ever for a second connection. eventfold's lock is now
// GET_LOCK on the connection that migrates, as PostgreSQL's advisory lock
// is: it needs no other connection, no lease and no heartbeat, and the
// server frees it when the connection ends (a killed migrator leaves no
// stale row). Older eventfold binaries take only the lock table's row, so
// the row is still taken as well when the pool can give a second
// connection (a cap other than 1); on a one-connection pool a migrator of
// this version and one older than it, started at the same moment, do not
// wait for each other.
func init() {
	contract.RegisterMigrationSessionLocker("mysql", func(db *sql.DB) (lock.SessionLocker, error) {
		table, err := lock.NewMySQLTableLocker(lock.WithTableName(lockTable), lock.WithTableLockID(lockID), lock.WithTableLockTimeout(time.Second, lockWaitSeconds))
		if err != nil {
			return nil, err
		}
		return &sessionLocker{db: db, table: table}, nil
	})
}

const (
	// lockTable and lockID are the lock table's row older eventfold binaries
	// take (eventfold.MigrationTable + "_lock", eventfold's lock id).
	lockTable = "eventfold_goose_version_lock"
	lockID    = 0x1f3f0d4e
	// lockWaitSeconds: how long a migrator waits for another one's lock.
	lockWaitSeconds = 300
)

// lockName is the GET_LOCK name: the lock is the server's, so it names
// the database (hashed: a name is at most 64 characters).
const lockName = `CONCAT('eventfold.migrate.', SHA1(DATABASE()))`

type sessionLocker struct {
	db    *sql.DB
	table lock.Locker
	// restoreMode is the session's sql_mode to give back at unlock when
	// SessionLock changed it (see migrationSQLMode); "" when unchanged.
	restoreMode string
	// tableHeld: the lock table's row was taken (the pool allowed a second
	// connection), so SessionUnlock frees it.
	tableHeld bool
}

// SessionLock implements lock.SessionLocker: GET_LOCK on conn, polled a
// second at a time so that ctx ends the wait, then the lock table's row.
// goose migrates on conn, so its sql_mode is set for migrating here first
// (see migrationSQLMode).
func (l *sessionLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if err := l.setMigrationSQLMode(ctx, conn); err != nil {
		return err
	}
	if err := l.lock(ctx, conn); err != nil {
		return errors.Join(err, l.restoreSQLMode(context.WithoutCancel(ctx), conn))
	}
	return nil
}

func (l *sessionLocker) lock(ctx context.Context, conn *sql.Conn) error {
	deadline := time.Now().Add(lockWaitSeconds * time.Second)
	for {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+lockName+`, 1)`).Scan(&got); err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("wait for the migration lock: %w", ctxErr)
			}
			return fmt.Errorf("take the migration lock (GET_LOCK): %w", err)
		}
		if got.Valid && got.Int64 == 1 {
			break
		}
		if !got.Valid {
			return errors.New("take the migration lock: GET_LOCK returned NULL")
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("wait for the migration lock: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the migration lock (GET_LOCK) is held by another migrator: waited %d s", lockWaitSeconds)
		}
	}
	if l.db.Stats().MaxOpenConnections == 1 {
		return nil
	}
	if err := l.table.Lock(ctx, l.db); err != nil {
		return errors.Join(err, release(context.WithoutCancel(ctx), conn))
	}
	l.tableHeld = true
	return nil
}

// SessionUnlock implements lock.SessionLocker.
func (l *sessionLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var err error
	if l.tableHeld {
		l.tableHeld = false
		err = l.table.Unlock(ctx, l.db)
	}
	return errors.Join(err, release(ctx, conn), l.restoreSQLMode(ctx, conn))
}

// oracleModes are MariaDB's sql_mode=ORACLE and the modes it brings with
// it. Under ORACLE MariaDB parses stored procedures as PL/SQL and refuses
// eventfold's (1064), after 00001's tables were created, so that every
// later migrate up failed on them ("Table 'eventfold_streams' already
// exists") and only dropping them by hand got out. The others change what
// a procedure body means (|| as concatenation, "..." as identifiers,
// simultaneous assignment in UPDATE).
var oracleModes = map[string]bool{
	"ORACLE": true, "PIPES_AS_CONCAT": true, "ANSI_QUOTES": true, "IGNORE_SPACE": true,
	"NO_KEY_OPTIONS": true, "NO_TABLE_OPTIONS": true, "NO_FIELD_OPTIONS": true, "SIMULTANEOUS_ASSIGNMENT": true,
}

// migrationSQLMode returns the sql_mode to migrate under, given the
// session's: without ORACLE and the modes it brings when the session runs
// in ORACLE mode (a server's or a DSN's sql_mode), else the session's own.
// A procedure keeps the sql_mode it was created with, so sessions in
// ORACLE mode then append and read as any other.
func migrationSQLMode(mode string) (string, bool) {
	parts := strings.Split(mode, ",")
	if !slices.Contains(parts, "ORACLE") {
		return mode, false
	}
	kept := parts[:0]
	for _, p := range parts {
		if !oracleModes[p] {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, ","), true
}

func (l *sessionLocker) setMigrationSQLMode(ctx context.Context, conn *sql.Conn) error {
	var mode string
	if err := conn.QueryRowContext(ctx, `SELECT @@SESSION.sql_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("read the session's sql_mode: %w", err)
	}
	want, changed := migrationSQLMode(mode)
	if !changed {
		return nil
	}
	if _, err := conn.ExecContext(ctx, `SET SESSION sql_mode = ?`, want); err != nil {
		return fmt.Errorf("migrate without sql_mode ORACLE (MariaDB cannot parse eventfold's procedures under it): set sql_mode %q: %w", want, err)
	}
	l.restoreMode = mode
	return nil
}

func (l *sessionLocker) restoreSQLMode(ctx context.Context, conn *sql.Conn) error {
	if l.restoreMode == "" {
		return nil
	}
	mode := l.restoreMode
	l.restoreMode = ""
	if _, err := conn.ExecContext(ctx, `SET SESSION sql_mode = ?`, mode); err != nil {
		return fmt.Errorf("give the migrating session its sql_mode %q back: %w", mode, err)
	}
	return nil
}

func release(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `DO RELEASE_LOCK(`+lockName+`)`); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	return nil
}
