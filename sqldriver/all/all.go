// Package all registers every database/sql driver eventfold supports
// (SQLite, PostgreSQL, MySQL/MariaDB, SQL Server) with package sqldriver,
// for programs that take any DSN, such as esctl:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/all"
//
// A service that uses one database imports that dialect's package instead
// and links no other driver.
package all

import (
	_ "github.com/eventfold/eventfold/sqldriver/mssqldriver"    // sqlserver://
	_ "github.com/eventfold/eventfold/sqldriver/mysqldriver"    // mysql://
	_ "github.com/eventfold/eventfold/sqldriver/postgresdriver" // postgres://
	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"   // sqlite://
)
