package testdb

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/pgxdriver"
)

// PgxStore returns a Store over pgx (transaction type pgx.Tx) on a fresh,
// migrated PostgreSQL database.
func PgxStore(t testing.TB) *eventfold.Store[pgx.Tx] {
	t.Helper()
	dsn := DSN(t, eventfold.Postgres)
	drv, err := pgxdriver.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open pgx: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	return eventfold.New(drv, nil)
}
