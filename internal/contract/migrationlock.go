package contract

import (
	"database/sql"
	"sync"

	"github.com/pressly/goose/v3/lock"
)

// Migration lockers for the dialects goose has none for (SQLite): the
// dialect registers one in its init, NewMigrator picks it up. A dialect
// not linked into the program registers nothing, and its migrations run
// unlocked, as goose runs them.
var (
	lockersMu sync.RWMutex
	lockers   = map[string]func(*sql.DB) (lock.Locker, error){}
)

// RegisterMigrationLocker makes newLocker the migration lock of dialect
// (eventfold.Dialect's string). newLocker runs when the migrator is made,
// before goose holds any connection of db: goose calls Lock while it holds
// one, so a Lock that needed another from a one-connection pool would wait
// for ever.
func RegisterMigrationLocker(dialect string, newLocker func(*sql.DB) (lock.Locker, error)) {
	lockersMu.Lock()
	defer lockersMu.Unlock()
	lockers[dialect] = newLocker
}

// MigrationLocker returns a new migration lock for dialect on db, or nil.
func MigrationLocker(dialect string, db *sql.DB) (lock.Locker, error) {
	lockersMu.RLock()
	f := lockers[dialect]
	lockersMu.RUnlock()
	if f == nil {
		return nil, nil
	}
	return f(db)
}

// Dialects whose DDL commits statement by statement (MySQL, MariaDB): a
// migration stopped between two of its statements stays half-applied, its
// version unrecorded, and running it again fails on what it already did.
// The dialect registers itself in its init; the migrator then lets a
// migration that has started finish when its context is cancelled.
var autocommitDDL sync.Map

// RegisterAutocommitDDL records that dialect's DDL commits statement by
// statement.
func RegisterAutocommitDDL(dialect string) { autocommitDDL.Store(dialect, true) }

// AutocommitDDL reports whether dialect registered RegisterAutocommitDDL.
func AutocommitDDL(dialect string) bool {
	_, ok := autocommitDDL.Load(dialect)
	return ok
}

// Migration session lockers: a lock held by the connection goose migrates
// on (MySQL's GET_LOCK), so that migrating needs no second connection from
// the pool. NewMigrator prefers a dialect's session locker to its locker.
var sessionLockers sync.Map // dialect -> func(*sql.DB) (lock.SessionLocker, error)

// RegisterMigrationSessionLocker makes newLocker the migration lock of
// dialect, taken on the connection the migrations run on. newLocker gets
// the pool, for what the lock may also take beside that connection.
func RegisterMigrationSessionLocker(dialect string, newLocker func(*sql.DB) (lock.SessionLocker, error)) {
	sessionLockers.Store(dialect, newLocker)
}

// MigrationSessionLocker returns a new session migration lock for dialect
// on db, or nil.
func MigrationSessionLocker(dialect string, db *sql.DB) (lock.SessionLocker, error) {
	f, ok := sessionLockers.Load(dialect)
	if !ok {
		return nil, nil
	}
	return f.(func(*sql.DB) (lock.SessionLocker, error))(db)
}
