package postgres

import (
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dbsqlc/postgresdb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Ops is eventfold.Ops for PostgreSQL, bound to one pool, connection or
// transaction. Files of this package named for a feature (commands.go,
// subscriptions.go, archive.go, stats.go) add further methods on *Ops.
type Ops struct {
	// db is what statements run on: a pgx pool/conn/tx, or database/sql
	// behind stdDB.
	db postgresdb.DBTX
	// q holds the generated queries; stateless, so one value serves all.
	q *postgresdb.Queries
}

var _ contract.Ops = (*Ops)(nil)

// NewPgx returns Ops running on db: a *pgxpool.Pool, *pgx.Conn or pgx.Tx.
func NewPgx(db postgresdb.DBTX) *Ops {
	return &Ops{db: db, q: postgresdb.New()}
}

// NewStd returns Ops running on a database/sql handle (*sql.DB, *sql.Tx or
// *sql.Conn) opened with the pgx stdlib driver ("pgx",
// github.com/jackc/pgx/v5/stdlib). Other PostgreSQL drivers for
// database/sql are not supported: the queries pass pgtype values and arrays
// that only pgx encodes.
func NewStd(db dialect.DB) *Ops {
	return &Ops{db: stdDB{db: db}, q: postgresdb.New()}
}
