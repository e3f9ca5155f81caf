package bench

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// openSized opens dsn through sqldriver with a pool of conns connections.
func openSized(ctx context.Context, dsn string, conns int) (*sqldriver.Driver, error) {
	drv, err := sqldriver.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	drv.DB().SetMaxOpenConns(conns)
	drv.DB().SetMaxIdleConns(conns)
	return drv, nil
}

// fixture is a database made ready for the workloads: eventfold's
// migrations applied and the benchmark's own tables created.
type fixture struct {
	dialect eventfold.Dialect
	sqls    dialectSQL
	drv     *sqldriver.Driver
	store   *eventfold.Store[*sql.Tx]
}

// prepare opens dsn (a pool of conns connections), migrates it and creates
// the benchmark's tables. Close the fixture's driver when done.
func prepare(ctx context.Context, dsn string, conns int) (*fixture, error) {
	d, err := sqldriver.DialectOf(dsn)
	if err != nil {
		return nil, err
	}
	sqls, err := sqlFor(d)
	if err != nil {
		return nil, err
	}
	drv, err := openSized(ctx, dsn, conns)
	if err != nil {
		return nil, err
	}
	store := eventfold.New(drv, nil)
	if err := store.Migrate(ctx); err != nil {
		drv.Close()
		return nil, err
	}
	for _, stmt := range sqls.create {
		if _, err := drv.DB().ExecContext(ctx, stmt); err != nil {
			drv.Close()
			return nil, fmt.Errorf("bench: create tables: %w", err)
		}
	}
	return &fixture{dialect: d, sqls: sqls, drv: drv, store: store}, nil
}
