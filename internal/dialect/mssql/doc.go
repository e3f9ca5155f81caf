// Package mssql implements eventfold's store operations on SQL Server
// through database/sql and github.com/microsoft/go-mssqldb (driver name
// "sqlserver", parameters @p1, @p2, ...).
//
// sqlc has no SQL Server engine, so the queries here are written by hand;
// the cross-database conformance suite keeps them honest. Appends go
// through the stored procedure eventfold.append_events (see
// sql/mssql/00001_events.sql), which checks the expected version, takes
// global positions from the one-row counter eventfold.position and inserts
// the events. The counter's row lock is held until the transaction ends,
// so positions become visible in order and a locking
// "global_position >= from" read never skips a late commit (see ReadAll).
//
// Identifiers: SQL Server ignores trailing spaces when it compares strings,
// under every collation, so "a" and "a " would be one stream, command or
// subscription. Identifier columns are BIN2 (byte-exact otherwise) and
// identifiers ending in a space are refused with eventfold.ErrInvalidInput
// before any SQL (reads of such a stream id find nothing).
//
// Errors: every operation marks the errors after which a retry may succeed
// with eventfold.ErrTransient (IsTransient lists them); nothing outside
// this package needs SQL Server's error numbers.
package mssql
