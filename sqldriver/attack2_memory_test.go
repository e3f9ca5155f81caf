package sqldriver_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/sqldriver"
	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
)

// TestAttack2InMemorySQLiteOutlivesIdleTime: an in-memory SQLite database
// lives in its pool's only connection. Open's DefaultConnMaxIdleTime (5
// minutes) closed that connection after 5 idle minutes, and the next
// statement ran on a new, empty database: every event gone. database/sql
// has no getter for the setting, so the pool's field is read.
func TestAttack2InMemorySQLiteOutlivesIdleTime(t *testing.T) {
	for _, dsn := range []string{"sqlite://:memory:", "sqlite:///attack2?mode=memory&cache=shared"} {
		t.Run(dsn, func(t *testing.T) {
			drv, err := sqldriver.Open(context.Background(), dsn)
			require.NoError(t, err)
			defer drv.Close()
			idle := time.Duration(reflect.ValueOf(drv.DB()).Elem().FieldByName("maxIdleTime").Int())
			require.Zero(t, idle, "the connection holding the in-memory database is closed after %v idle", idle)
			life := time.Duration(reflect.ValueOf(drv.DB()).Elem().FieldByName("maxLifetime").Int())
			require.Zero(t, life)
		})
	}
}
