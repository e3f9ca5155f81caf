// Package mysql implements eventfold's store operations (eventfold.Ops) for
// MySQL 8.0.16+ and MariaDB 10.6+, over database/sql with
// github.com/go-sql-driver/mysql.
//
// Appends call the stored procedure eventfold_append_events (created by
// sql/mysql/00001_events.sql, replaced by 00005); reads use the sqlc queries
// in queries/mysql/events.sql. The procedure takes global positions from a
// one-row counter whose row lock is held until commit, so positions are
// dense and commit in order; the price is that appends to all streams
// serialise from the append to the commit. A plain read on MariaDB may still
// show a later commit before an earlier one, so ReadAll delivers only the
// gap-free prefix and settles a gap with a locking read (see ReadAll).
//
// The connection must be opened with parseTime=true, loc=UTC and
// time_zone='+00:00'; package sqldriver does that, and runs its
// transactions at READ COMMITTED. Since 00005 the procedure takes no gap
// locks, so appends also behave at REPEATABLE READ.
package mysql
