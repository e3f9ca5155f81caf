package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"
	mssql "github.com/microsoft/go-mssqldb"
	"modernc.org/sqlite"

	"github.com/eventfold/eventfold"
)

// DialectOf tells the dialect of an eventfold DSN from its scheme.
func DialectOf(dsn string) (eventfold.Dialect, error) {
	scheme, _, ok := strings.Cut(dsn, "://")
	if !ok {
		return "", &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("%q has no scheme; want postgres://, mysql://, sqlite://PATH or sqlserver://", Redact(dsn))}
	}
	d, err := eventfold.ParseDialect(strings.ToLower(scheme))
	if err != nil {
		return "", fmt.Errorf("dsn %q: %w", Redact(dsn), err)
	}
	return d, nil
}

// Open opens the database an eventfold DSN names and checks that it
// answers. The scheme picks the driver:
//
//	postgres://user:pass@host:5432/db?sslmode=disable   (pgx, through database/sql)
//	mysql://user:pass@host:3306/db                      (go-sql-driver/mysql; MySQL 8 or MariaDB)
//	sqlite://path/to/file.db  or  sqlite:///abs/path.db (modernc.org/sqlite, WAL)
//	sqlserver://user:pass@host:1433?database=db         (go-mssqldb)
//
// Errors never contain the password.
func Open(ctx context.Context, dsn string) (*Driver, error) {
	conn, d, err := Connector(dsn)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	if d == eventfold.SQLite && (strings.Contains(dsn, ":memory:") || strings.Contains(dsn, "mode=memory")) {
		db.SetMaxOpenConns(1) // every connection would be a different database
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
// foreign keys, BEGIN IMMEDIATE; MySQL: UTC, parseTime, client-side
// interpolation), and its dialect. Open it with sql.OpenDB, wrapped if you
// like (to trace statements, say), then pass the *sql.DB to New.
func Connector(dsn string) (driver.Connector, eventfold.Dialect, error) {
	d, err := DialectOf(dsn)
	if err != nil {
		return nil, "", err
	}
	if err := checkCredentials(dsn, d); err != nil {
		return nil, "", err
	}
	var c driver.Connector
	switch d {
	case eventfold.Postgres:
		c, err = stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(dsn)
	case eventfold.MySQL:
		var cfg *gomysql.Config
		if cfg, err = MySQLConfig(dsn); err == nil {
			c, err = gomysql.NewConnector(cfg)
		}
	case eventfold.SQLite:
		c, err = sqliteConnector(dsn)
	case eventfold.SQLServer:
		if err := checkSQLServerURL(SQLServerDSN(dsn)); err != nil {
			return nil, "", err
		}
		c, err = mssql.NewConnector(SQLServerDSN(dsn))
	}
	if err != nil {
		return nil, "", fmt.Errorf("sqldriver: open %s: %s", Redact(dsn), Scrub(err.Error(), dsn))
	}
	return c, d, nil
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

// checkSQLServerURL refuses the one URL shape that go-mssqldb accepts but
// reads differently from every other eventfold DSN: a path with a port.
// go-mssqldb takes the path as an instance name and ignores it when a port
// is given, so sqlserver://u:p@db:1433/app would connect to the login's
// default database (often master) and migrate that, without a word.
func checkSQLServerURL(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil // go-mssqldb reports it
	}
	path := strings.Trim(u.Path, "/")
	if path != "" && u.Port() != "" && u.Query().Get("database") == "" {
		return &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf(
			"%s: in a sqlserver:// URL the path (%q) is an instance name, which is ignored when a port is given; name the database with ?database=%s",
			Redact(dsn), path, url.QueryEscape(path))}
	}
	return nil
}

// sqliteConnector opens sqlite://PATH with WAL, synchronous=NORMAL, a busy
// timeout, foreign keys and BEGIN IMMEDIATE for every transaction.
func sqliteConnector(dsn string) (driver.Connector, error) {
	path, query, err := splitSQLite(dsn)
	if err != nil {
		return nil, err
	}
	params := url.Values{}
	params.Add("_pragma", "busy_timeout(10000)")
	params.Add("_pragma", "journal_mode(WAL)")
	params.Add("_pragma", "synchronous(NORMAL)")
	params.Add("_pragma", "foreign_keys(1)")
	params.Set("_txlock", "immediate")
	params.Set("_time_format", "sqlite")
	extra, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("sqlite DSN parameters: %v", err)
	}
	for k, vs := range extra {
		for _, v := range vs {
			params.Add(k, v)
		}
	}
	return dsnConnector{drv: &sqlite.Driver{}, dsn: "file:" + sqliteURIPath.Replace(path) + "?" + params.Encode()}, nil
}

// SQLitePath returns the file a sqlite:// DSN names ("" for an in-memory
// database), so that a caller can tell whether opening it would create it.
func SQLitePath(dsn string) (string, error) {
	path, query, err := splitSQLite(dsn)
	if err != nil {
		return "", err
	}
	if path == ":memory:" || strings.Contains(query, "mode=memory") {
		return "", nil
	}
	return path, nil
}

// sqliteURIPath escapes a file path for the "file:" URI handed to SQLite,
// which decodes %XX in it and ends it at "?" or "#": unescaped, "#" would
// cut the path short (ledger#1.db and ledger#2.db would both open
// "ledger").
var sqliteURIPath = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// splitSQLite splits sqlite://PATH?PARAMS and returns the file's path
// with its %XX escapes decoded (SQLite has always decoded them when it
// opened the file; %3F is how a path holds a "?"). A "file:" before the
// path (the form SQLite's own URIs take) is dropped: modernc would
// otherwise create a file literally named "file:x.db".
func splitSQLite(dsn string) (path, query string, err error) {
	path = dsn[strings.Index(dsn, "://")+3:]
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	path = strings.TrimPrefix(path, "file:")
	if path == "" {
		return "", "", &eventfold.ValidationError{Field: "dsn", Reason: "sqlite DSN has no file path (want sqlite://PATH)"}
	}
	decoded, err := url.PathUnescape(path)
	if err != nil {
		return "", "", &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("sqlite DSN path %q has a bad %%-escape (write %%25 for a %% in a file name): %v", path, err)}
	}
	return decoded, query, nil
}

// dsnConnector adapts a driver without a connector of its own.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }

// MySQLConfig turns mysql://user:pass@host:port/db?params into the
// go-sql-driver configuration eventfold uses: UTC both ways, parseTime,
// client-side argument interpolation.
func MySQLConfig(dsn string) (*gomysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "mysql" {
		return nil, fmt.Errorf("not a mysql:// URL")
	}
	// The query string carries go-sql-driver's own options (tls, timeout,
	// charset, ...) as well as system variables: let the driver tell them
	// apart, as it does for its native DSNs. The address goes along so that
	// tls=true verifies the right host name; the credentials are set below,
	// never parsed from text.
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg, err := gomysql.ParseDSN("tcp(" + addr + ")/?" + u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN parameters: %v", err)
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.ParseTime = true
	// Interpolate arguments client-side: without it every statement with
	// arguments is prepare + execute + close, three round trips. Safe with
	// the utf8mb4 connection character set the driver uses.
	cfg.InterpolateParams = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Always UTC: NOW(6) in checkpoints and leases must mean the same
	// instant in every session, whatever the DSN asks for.
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}
