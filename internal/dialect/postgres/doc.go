// Package postgres implements eventfold.Ops for PostgreSQL, on top of the
// sqlc-generated queries in internal/dbsqlc/postgresdb.
//
// The same code serves both Go drivers: NewPgx runs on a pgx pool,
// connection or transaction; NewStd runs on database/sql with the pgx
// stdlib driver ("pgx"), through a small adapter that presents *sql.DB or
// *sql.Tx as postgresdb.DBTX.
//
// The SQL side (tables, eventfold.append_events, the position scheme) is
// sql/postgres/00001_events.sql; the queries are queries/postgres/*.sql.
package postgres
