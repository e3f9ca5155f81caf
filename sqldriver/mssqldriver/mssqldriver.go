// Package mssqldriver registers SQL Server (go-mssqldb) with package
// sqldriver. Import it for its side effect in a program that opens
// sqlserver:// DSNs; a program that does not import it links no go-mssqldb:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/mssqldriver"
//
//	d, err := sqldriver.Open(ctx, "sqlserver://app:pw@db:1433?database=app")
package mssqldriver

import (
	"database/sql/driver"
	"fmt"
	"net/url"
	"strings"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	mssqlops "github.com/eventfold/eventfold/internal/dialect/mssql"
	"github.com/eventfold/eventfold/sqldriver"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

func init() {
	registry.Register(registry.Entry{
		Dialect: eventfold.SQLServer,
		Ops:     func(db dialect.DB) eventfold.Ops { return mssqlops.New(db) },
		Connector: func(dsn string) (driver.Connector, error) {
			dsn = sqldriver.SQLServerDSN(dsn)
			if err := checkURL(dsn); err != nil {
				return nil, err
			}
			return mssql.NewConnector(dsn)
		},
	})
}

// checkURL refuses the one URL shape that go-mssqldb accepts but reads
// differently from every other eventfold DSN: a path with a port.
// go-mssqldb takes the path as an instance name and ignores it when a port
// is given, so sqlserver://u:p@db:1433/app would connect to the login's
// default database (often master) and migrate that, without a word.
func checkURL(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return nil // go-mssqldb reports it
	}
	path := strings.Trim(u.Path, "/")
	if path != "" && u.Port() != "" && u.Query().Get("database") == "" {
		return &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf(
			"%s: in a sqlserver:// URL the path (%q) is an instance name, which is ignored when a port is given; name the database with ?database=%s",
			sqldriver.Redact(dsn), path, url.QueryEscape(path))}
	}
	return nil
}
