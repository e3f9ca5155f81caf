package demo

import (
	"database/sql"
	"fmt"

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
	switch d {
	case eventfold.SQLite:
		rec.begin = "BEGIN IMMEDIATE  -- takes SQLite's single write lock at once"
	case eventfold.Postgres:
		rec.begin = "BEGIN"
	case eventfold.MySQL:
		rec.begin = "START TRANSACTION"
	default:
		return nil, "", fmt.Errorf("demo: the bank example runs on sqlite, postgres and mysql, not %s", d)
	}
	inner, _, err := sqldriver.Connector(dsn) // sqldriver's settings, with the recorder in between
	if err != nil {
		return nil, "", err
	}
	db := sql.OpenDB(&connector{inner: inner, rec: rec})
	return db, d, nil
}
