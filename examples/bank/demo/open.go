package demo

import (
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// openRecorded opens the database an eventfold DSN names, like
// sqldriver.Open does, but with the statement recorder between
// database/sql and the real driver.
func openRecorded(dsn string, rec *recorder) (*sql.DB, eventfold.Dialect, error) {
	d, err := sqldriver.DialectOf(dsn)
	if err != nil {
		return nil, "", err
	}
	var inner driver.Connector
	switch d {
	case eventfold.SQLite:
		rec.begin = "BEGIN IMMEDIATE  -- takes SQLite's single write lock at once"
		inner, err = sqliteConnector(dsn)
	case eventfold.Postgres:
		rec.begin = "BEGIN"
		inner, err = stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(dsn)
	case eventfold.MySQL:
		rec.begin = "START TRANSACTION"
		inner, err = mysqlConnector(dsn)
	default:
		return nil, "", fmt.Errorf("demo: the bank example runs on sqlite, postgres and mysql, not %s", d)
	}
	if err != nil {
		return nil, "", fmt.Errorf("demo: open %s: %w", sqldriver.Redact(dsn), err)
	}
	db := sql.OpenDB(&connector{inner: inner, rec: rec})
	return db, d, nil
}

// sqliteConnector mirrors sqldriver's SQLite settings: WAL, a busy
// timeout, foreign keys and BEGIN IMMEDIATE for every transaction.
func sqliteConnector(dsn string) (driver.Connector, error) {
	path := dsn[strings.Index(dsn, "://")+3:]
	query := ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	if path == "" {
		return nil, fmt.Errorf("sqlite DSN has no file path (want sqlite://PATH)")
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
		return nil, err
	}
	for k, vs := range extra {
		for _, v := range vs {
			params.Add(k, v)
		}
	}
	return dsnConnector{drv: &sqlite.Driver{}, dsn: "file:" + path + "?" + params.Encode()}, nil
}

// mysqlConnector mirrors sqldriver's MySQL settings: UTC, parseTime.
func mysqlConnector(dsn string) (driver.Connector, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("not a URL")
	}
	cfg := gomysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = u.Hostname() + ":3306"
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Params = map[string]string{"time_zone": "'+00:00'"}
	for k, vs := range u.Query() {
		if len(vs) > 0 {
			cfg.Params[k] = vs[len(vs)-1]
		}
	}
	return gomysql.NewConnector(cfg)
}
