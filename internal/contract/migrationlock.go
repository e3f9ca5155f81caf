package contract

import (
	"sync"

	"github.com/pressly/goose/v3/lock"
)

// Migration lockers for the dialects goose has none for (SQLite): the
// dialect registers one in its init, NewMigrator picks it up. A dialect
// not linked into the program registers nothing, and its migrations run
// unlocked, as goose runs them.
var (
	lockersMu sync.RWMutex
	lockers   = map[string]func() lock.Locker{}
)

// RegisterMigrationLocker makes newLocker the migration lock of dialect
// (eventfold.Dialect's string).
func RegisterMigrationLocker(dialect string, newLocker func() lock.Locker) {
	lockersMu.Lock()
	defer lockersMu.Unlock()
	lockers[dialect] = newLocker
}

// MigrationLocker returns a new migration lock for dialect, or nil.
func MigrationLocker(dialect string) lock.Locker {
	lockersMu.RLock()
	defer lockersMu.RUnlock()
	if f := lockers[dialect]; f != nil {
		return f()
	}
	return nil
}
