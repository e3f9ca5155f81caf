// Package mysql implements eventfold's store operations (eventfold.Ops) for
// MySQL 8.0.16+ and MariaDB 10.6+, over database/sql with
// github.com/go-sql-driver/mysql.
//
// Appends call the stored procedure eventfold_append_events from
// sql/mysql/00001_events.sql; reads use the sqlc queries in
// queries/mysql/events.sql. The procedure takes global positions from a
// one-row counter whose row lock is held until commit, so positions become
// visible in order and ReadAll needs no horizon filter; the price is that
// appends to all streams serialise from the append to the commit.
//
// The connection must be opened with parseTime=true, loc=UTC and
// time_zone='+00:00', and transactions that append should run at READ
// COMMITTED (without gap locks, concurrent creation of one stream ends in a
// clean wrong-expected-version error rather than a deadlock). Package
// sqldriver does all of that.
package mysql
