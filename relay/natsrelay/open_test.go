package natsrelay_test

import (
	"context"
	"database/sql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

func openStoreErr(dsn string) (*eventfold.Store[*sql.Tx], error) {
	drv, err := sqldriver.Open(context.Background(), dsn)
	if err != nil {
		return nil, err
	}
	return eventfold.New(drv, nil), nil
}
