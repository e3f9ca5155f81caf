// Package sqlitedriver registers SQLite (modernc.org/sqlite, pure Go) with
// package sqldriver. Import it for its side effect in a program that opens
// sqlite:// DSNs; a program that does not import it links no SQLite:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
//
//	d, err := sqldriver.Open(ctx, "sqlite://eventfold.db")
package sqlitedriver

import (
	"context"
	"database/sql/driver"
	"fmt"
	"net/url"

	"modernc.org/sqlite"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	sqliteops "github.com/eventfold/eventfold/internal/dialect/sqlite"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

func init() {
	registry.Register(registry.Entry{
		Dialect:   eventfold.SQLite,
		Ops:       func(db dialect.DB) eventfold.Ops { return sqliteops.New(db) },
		Connector: connector,
	})
}

// connector opens sqlite://PATH with WAL, synchronous=NORMAL, a busy
// timeout, foreign keys and BEGIN IMMEDIATE for every transaction.
func connector(dsn string) (driver.Connector, error) {
	path, query, err := registry.SplitSQLite(dsn)
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
	return dsnConnector{drv: &sqlite.Driver{}, dsn: "file:" + registry.SQLiteURIPath.Replace(path) + "?" + params.Encode()}, nil
}

// dsnConnector adapts a driver without a connector of its own.
type dsnConnector struct {
	drv driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.drv }
