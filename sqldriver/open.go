package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dsnurl"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

// DialectOf tells the dialect of an eventfold DSN from its scheme.
func DialectOf(dsn string) (eventfold.Dialect, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		if hint := dsnurl.KeywordsHint(dsn); hint != "" {
			// The DSN itself is not repeated: the suggestion shows it.
			return "", &eventfold.ValidationError{Field: "dsn", Reason: hint}
		}
		return "", &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("%q has no scheme; want postgres://, mysql://, sqlite://PATH or sqlserver://", Redact(dsn))}
	}
	d, err := eventfold.ParseDialect(strings.ToLower(scheme))
	if err != nil {
		return "", fmt.Errorf("dsn %q: %w", Redact(dsn), err)
	}
	return d, nil
}

// The idle-connection settings Open gives its pool (change them on
// Driver.DB() if they do not suit): connections a burst of concurrent
// transactions opened stay open, up to DefaultMaxIdleConns, until unused
// for DefaultConnMaxIdleTime. database/sql's own default keeps 2.
const (
	DefaultMaxIdleConns    = 32
	DefaultConnMaxIdleTime = 5 * time.Minute
)

// DefaultMaxOpenConns caps the connections Open's pool opens at once
// (database/sql's own default has no cap: a burst of concurrent
// transactions opened one connection each, hundreds on a busy service,
// against PostgreSQL's default max_connections of 100 and MariaDB's 151).
// Beyond it a transaction waits for a connection. It leaves room for the
// benchmarks' 16 clients with their subscribers and notifier. The DSN
// parameter max_open_conns=N overrides it (0: no cap); Open removes the
// parameter before the driver sees the DSN.
const DefaultMaxOpenConns = 64

// maxOpenParam is the DSN query parameter that sets the pool's cap.
const maxOpenParam = "max_open_conns"

// takeMaxOpen removes max_open_conns=N from dsn's query and returns dsn
// without it and N (DefaultMaxOpenConns when absent). The parameter given
// twice, or without a value, is refused: the one that wins would be a
// guess, and a bare max_open_conns would go to the server (which refuses
// it as an unknown setting, on MySQL as a syntax error).
func takeMaxOpen(dsn string) (string, int, error) {
	base, query, ok := strings.Cut(dsn, "?")
	if !ok {
		return dsn, DefaultMaxOpenConns, nil
	}
	n, seen := DefaultMaxOpenConns, false
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		k, v, hasValue := strings.Cut(kv, "=")
		if k != maxOpenParam {
			kept = append(kept, kv)
			continue
		}
		if seen {
			return "", 0, &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("%s given twice: give it once", maxOpenParam)}
		}
		seen = true
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		parsed, err := strconv.Atoi(v)
		if !hasValue || err != nil || parsed < 0 {
			return "", 0, &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("%s=%q: want a whole number of connections >= 0 (0: no cap)", maxOpenParam, v)}
		}
		n = parsed
	}
	if len(kept) == 0 {
		return base, n, nil
	}
	return base + "?" + strings.Join(kept, "&"), n, nil
}

// DriverDSN returns dsn without the parameters only Open reads
// (max_open_conns), as the database's own driver takes it: for a
// connection or pool opened beside Open's from the same DSN, such as
// pgxdriver.Listener's LISTEN connection or a pgxpool. PostgreSQL refuses
// a connection that carries max_open_conns (unrecognized configuration
// parameter); MySQL refuses it as an unknown system variable. A bad
// max_open_conns is refused as Open refuses it.
//
// The scheme comes back in lower case, as in the DSN Open hands its driver
// (see lowerScheme).
func DriverDSN(dsn string) (string, error) {
	dsn, _, err := takeMaxOpen(lowerScheme(dsn))
	return dsn, err
}

// lowerScheme returns dsn with its scheme in lower case. The dialect is
// told from the scheme in any case (POSTGRES://, Postgresql://), but pgx
// reads only a DSN starting with a lower-case postgres:// or postgresql://
// as a URL: anything else it parsed as key=value text, connected to the
// local Unix socket as the operating-system user and sent the whole DSN,
// password included, to that server as the name of a setting, which the
// server refused and wrote to its log.
func lowerScheme(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok || scheme == strings.ToLower(scheme) {
		return dsn
	}
	return strings.ToLower(scheme) + "://" + rest
}

// Open opens the database an eventfold DSN names and checks that it
// answers. The scheme picks the driver, whose package the program must
// import (see ErrNotRegistered):
//
//	postgres://user:pass@host:5432/db?sslmode=disable   (pgx, through database/sql)
//	mysql://user:pass@host:3306/db                      (go-sql-driver/mysql; MySQL 8 or MariaDB)
//	sqlite://path/to/file.db  or  sqlite:///abs/path.db (modernc.org/sqlite, WAL)
//	sqlserver://user:pass@host:1433?database=db         (go-mssqldb)
//
// MySQL connections are made READ COMMITTED for the whole session when they
// open, so transactions begin without setting the level again; a handler
// that changes its session's level (SET SESSION TRANSACTION ...) changes it
// for every later transaction on that pooled connection.
//
// The pool opens at most DefaultMaxOpenConns connections (the DSN
// parameter max_open_conns=N sets another cap, 0 none) and keeps up to
// DefaultMaxIdleConns idle ones (see there).
//
// Errors never contain the password.
func Open(ctx context.Context, dsn string) (*Driver, error) {
	dsn, maxOpen, err := takeMaxOpen(dsn)
	if err != nil {
		return nil, err
	}
	conn, d, err := Connector(dsn)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(maxOpen)
	// database/sql keeps 2 idle connections by default: with more
	// concurrent writers (or a Notifier sharing the writers' pool) every
	// transaction beyond the second opened a connection and closed it
	// again. Keep what a burst opened, and let it go after a while idle.
	db.SetMaxIdleConns(DefaultMaxIdleConns)
	db.SetConnMaxIdleTime(DefaultConnMaxIdleTime)
	if d == eventfold.SQLite && (strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory")) {
		db.SetMaxOpenConns(1) // every connection would be a different database
		// The database lives in that connection: closed when idle, it
		// would be gone, and the next statement would find an empty one.
		db.SetConnMaxIdleTime(0)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pingCtx); err != nil {
		db.Close()
		return nil, &ConnectError{DSN: Redact(dsn), Msg: Scrub(explainConnect(d, dsn, err), dsn), Err: err}
	}
	drv, err := New(db, d)
	if err != nil {
		db.Close()
		return nil, err
	}
	drv.owned = true
	if e, ok := registry.Lookup(d); ok && e.ReadCommittedSessions {
		// Every connection is READ COMMITTED from the start (MySQL): begin
		// without SET TRANSACTION ISOLATION LEVEL, one round trip less.
		drv.txOpts = nil
	}
	return drv, nil
}

// ConnectError reports that Open could not reach the database. Its message
// says what is wrong and what to do, without the password; Unwrap gives the
// driver's error.
type ConnectError struct {
	DSN string // redacted
	Msg string
	Err error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %s", e.DSN, e.Msg) }

// Unwrap returns the driver's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// Connector returns the database/sql connector for an eventfold DSN, with
// the settings Open uses (SQLite: WAL, synchronous=NORMAL, a busy timeout,
// foreign keys, temp_store=MEMORY, BEGIN IMMEDIATE; MySQL: UTC, parseTime, client-side
// interpolation, sessions READ COMMITTED), and its dialect. Open it with sql.OpenDB, wrapped if you
// like (to trace statements, say), then pass the *sql.DB to New.
//
// The dialect's package must be imported (see ErrNotRegistered).
func Connector(dsn string) (driver.Connector, eventfold.Dialect, error) {
	dsn = lowerScheme(dsn)
	d, err := DialectOf(dsn)
	if err != nil {
		return nil, "", err
	}
	if err := dsnurl.Check(dsn, d); err != nil {
		return nil, "", err
	}
	e, err := lookup(d)
	if err != nil {
		return nil, "", err
	}
	c, err := e.Connector(dsn)
	if err != nil {
		var invalid *eventfold.ValidationError
		if errors.As(err, &invalid) {
			return nil, "", err // says what to fix, and never holds the password
		}
		return nil, "", fmt.Errorf("sqldriver: open %s: %s", Redact(dsn), Scrub(err.Error(), dsn))
	}
	return c, d, nil
}

// ErrNotRegistered is matched (errors.Is) by the error of Open, Connector
// and New for a dialect whose package the program does not import. Each
// database/sql driver is linked only into programs that ask for it, by
// importing its package for its side effect:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"   // sqlite://
//	import _ "github.com/eventfold/eventfold/sqldriver/postgresdriver" // postgres:// (pgx's database/sql driver)
//	import _ "github.com/eventfold/eventfold/sqldriver/mysqldriver"    // mysql:// (MySQL 8, MariaDB)
//	import _ "github.com/eventfold/eventfold/sqldriver/mssqldriver"    // sqlserver://
//	import _ "github.com/eventfold/eventfold/sqldriver/all"            // every one (CLIs such as esctl)
var ErrNotRegistered = errors.New("sqldriver: dialect not registered")

// driverPackages names the package that registers each dialect, for the
// message that tells a user which import is missing.
var driverPackages = map[eventfold.Dialect]string{
	eventfold.SQLite:    "github.com/eventfold/eventfold/sqldriver/sqlitedriver",
	eventfold.Postgres:  "github.com/eventfold/eventfold/sqldriver/postgresdriver",
	eventfold.MySQL:     "github.com/eventfold/eventfold/sqldriver/mysqldriver",
	eventfold.SQLServer: "github.com/eventfold/eventfold/sqldriver/mssqldriver",
}

func lookup(d eventfold.Dialect) (registry.Entry, error) {
	if e, ok := registry.Lookup(d); ok {
		return e, nil
	}
	pkg, known := driverPackages[d]
	if !known {
		return registry.Entry{}, fmt.Errorf("sqldriver: %w", errUnknown(d))
	}
	return registry.Entry{}, fmt.Errorf("%w: this program has no %s driver: add import _ %q (or .../sqldriver/all)", ErrNotRegistered, d, pkg)
}

// SQLServerDSN rewrites the scheme of an eventfold SQL Server DSN to the
// lower-case "sqlserver://" that go-mssqldb requires. go-mssqldb reads
// only a DSN starting with exactly "sqlserver://" as a URL; anything else
// (mssql://, SQLServer://) it parses as an ADO key=value string, which
// silently connects to localhost as nobody: mssql://sa:pw@db:1433?database=x
// would give host localhost, no user, no database and no error. Other DSNs
// are returned unchanged.
func SQLServerDSN(dsn string) string {
	scheme, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return dsn
	}
	if d, err := eventfold.ParseDialect(strings.ToLower(scheme)); err != nil || d != eventfold.SQLServer {
		return dsn
	}
	return "sqlserver://" + rest
}

// SQLitePath returns the file a sqlite:// DSN names ("" for an in-memory
// database), so that a caller can tell whether opening it would create it.
func SQLitePath(dsn string) (string, error) {
	path, query, err := registry.SplitSQLite(dsn)
	if err != nil {
		return "", err
	}
	if path == ":memory:" || strings.Contains(query, "mode=memory") {
		return "", nil
	}
	return path, nil
}
