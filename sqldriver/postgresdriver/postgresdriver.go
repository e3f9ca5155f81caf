// Package postgresdriver registers PostgreSQL (pgx v5's database/sql
// driver) with package sqldriver. Import it for its side effect in a
// program that opens postgres:// DSNs through database/sql:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/postgresdriver"
//
//	d, err := sqldriver.Open(ctx, "postgres://app@db/app")
//
// A program that works with pgx directly uses package pgxdriver instead.
package postgresdriver

import (
	"database/sql/driver"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

func init() {
	registry.Register(registry.Entry{
		Dialect: eventfold.Postgres,
		Ops:     func(db dialect.DB) eventfold.Ops { return postgres.NewStd(db) },
		Connector: func(dsn string) (driver.Connector, error) {
			return stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(dsn)
		},
		MissingDatabase: func(err error) bool {
			var pg *pgconn.PgError
			return errors.As(err, &pg) && pg.Code == "3D000" // invalid_catalog_name
		},
		WrongServer: postgres.NotPostgres,
	})
}
