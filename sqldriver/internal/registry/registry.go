// Package registry holds the database/sql drivers that sqldriver's
// per-dialect packages (sqldriver/sqlitedriver, .../postgresdriver,
// .../mysqldriver, .../mssqldriver) register from their init functions.
//
// It is internal so that the registration hook is not public API: only
// those packages register, and a program links a driver exactly when it
// imports the package that registers it.
package registry

import (
	"database/sql/driver"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Entry is what a dialect's package contributes to sqldriver.
type Entry struct {
	// Dialect is the dialect the entry serves.
	Dialect eventfold.Dialect
	// Ops returns the dialect's operations over a *sql.DB or *sql.Tx.
	Ops func(dialect.DB) eventfold.Ops
	// Connector opens the database/sql connector for an eventfold DSN
	// of this dialect, with eventfold's settings. Errors may echo the
	// DSN: the caller scrubs them.
	Connector func(dsn string) (driver.Connector, error)
	// MissingDatabase reports whether err, from the first connection,
	// says that the database the DSN names does not exist; nil if the
	// dialect cannot tell.
	MissingDatabase func(error) bool
	// WrongServer reports whether err, from the first connection, says
	// that the server at the address answered in another database's
	// protocol; nil if the dialect cannot tell.
	WrongServer func(error) bool
	// ReadCommittedSessions says that every connection Connector opens
	// runs its transactions READ COMMITTED already, so that a Driver
	// opened on it begins them without setting the level each time.
	ReadCommittedSessions bool
}

var (
	mu      sync.RWMutex
	entries = map[eventfold.Dialect]Entry{}
)

// Register adds e. Registering a dialect twice is a programming error and
// panics, as database/sql's Register does.
func Register(e Entry) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := entries[e.Dialect]; dup {
		panic(fmt.Sprintf("sqldriver: %s registered twice", e.Dialect))
	}
	entries[e.Dialect] = e
}

// Lookup returns the entry for d, if its package was imported.
func Lookup(d eventfold.Dialect) (Entry, bool) {
	mu.RLock()
	defer mu.RUnlock()
	e, ok := entries[d]
	return e, ok
}

// SplitSQLite splits sqlite://PATH?PARAMS. A "file:" before the path (the
// form SQLite's own URIs take) is dropped: modernc would otherwise create a
// file literally named "file:x.db". It lives here because both sqldriver
// (SQLitePath, which links no SQLite) and sqlitedriver need it.
func SplitSQLite(dsn string) (path, query string, err error) {
	path = dsn[strings.Index(dsn, "://")+3:]
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	path = strings.TrimPrefix(path, "file:")
	if path == "" {
		return "", "", &eventfold.ValidationError{Field: "dsn", Reason: "sqlite DSN has no file path (want sqlite://PATH)"}
	}
	// The path comes back with its %XX escapes decoded (SQLite has always
	// decoded them when it opened the file; %3F is how a path holds a "?"),
	// so that the file a caller checks for is the file that is opened.
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return "", "", &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("sqlite DSN path %q has a bad %%-escape (write %%25 for a %% in a file name): %v", path, err)}
	}
	return decoded, query, nil
}

// SQLiteURIPath escapes a file path for the "file:" URI handed to SQLite,
// which decodes %XX in it and ends it at "?" or "#": unescaped, "#" would
// cut the path short (ledger#1.db and ledger#2.db would both open
// "ledger").
var SQLiteURIPath = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")
