package mysql

import (
	"context"

	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Ops runs eventfold's store operations on a MySQL or MariaDB handle: a
// pool (*sql.DB), one connection or one transaction.
type Ops struct {
	db dialect.DB
	q  *mysqldb.Queries
}

var _ contract.Ops = (*Ops)(nil)

// New returns the operations bound to db. A *sql.DB runs each append in a
// transaction of its own; a *sql.Tx runs everything inside that transaction.
func New(db dialect.DB) *Ops {
	return &Ops{db: db, q: mysqldb.New()}
}

// Exec runs a statement that returns no rows (savepoints and the like).
func (o *Ops) Exec(ctx context.Context, query string, args ...any) error {
	if _, err := o.db.ExecContext(ctx, query, args...); err != nil {
		return interpretError(err)
	}
	return nil
}
