// Package integration is eventfold's cross-database conformance suite: the
// same tests run against every dialect and driver. SQLite always runs;
// PostgreSQL, MySQL/MariaDB and SQL Server run from EVENTFOLD_POSTGRES_DSN,
// EVENTFOLD_MYSQL_DSN and EVENTFOLD_MSSQL_DSN (or testcontainers where a
// Docker engine answers), and are skipped with the reason otherwise —
// unless EVENTFOLD_REQUIRE names them, which turns a skip into a failure.
package integration
