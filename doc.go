// Package eventfold makes an SQL database an event-sourced data store that
// works like Redux: a command handler turns a command into events; in one
// transaction the events are appended to the event log and reducers apply
// them to read-model tables; the caller learns at once whether it worked.
//
// This package holds the event store itself: the event types, the
// expected-version rules, the typed errors and [Store], which appends to and
// reads from the log on PostgreSQL, MySQL/MariaDB, SQLite and SQL Server.
// A Store is generic over the transaction type of the Go driver in use, so a
// pgx user works with pgx.Tx (package pgxdriver) and a database/sql user with
// *sql.Tx (package sqldriver), with no casts.
//
// The orchestrator package builds command dispatch on top of the Store; the
// listener package relays committed events to subscribers.
//
// # Global positions
//
// Every event has a global position, unique and increasing in the order in
// which a reader of the whole log receives events. Positions are not dense:
// rolled-back appends leave holes, and on PostgreSQL a position is
// ((transaction id + offset) << 20 | index in transaction; the offset keeps
// positions increasing when the database moves to another cluster, see
// Store.CheckPositions), so that reading in position
// order below the oldest running transaction never skips an event that
// commits late (see ReadAll). Use stream versions for dense numbering.
package eventfold
