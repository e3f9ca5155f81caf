package eventfold_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack4MigrateUpAfterAKilledMigratorMySQL: a migrator killed (kill -9,
// a lost connection) after 00015's first statement and before goose
// recorded the version leaves eventfold_events without its CHECK
// constraint and the version at 14. The README (DBA section) says "MariaDB's
// DDL is not transactional, `migrate up` finishes it", but migrate up
// fails for ever: "partial migration error (type:sql,version:15): Error
// 1091: Can't DROP CONSTRAINT `eventfold_events_position_positive`; check
// that it exists", and esctl doctor prints only "positions ok" and exits
// 0 (seen by hand, same state made with migrate up --to 14). Seen by hand:
// esctl migrate up with max_open_conns=1 on an empty MariaDB database,
// kill -9 after 0.1 s (version 13 recorded, the rerun failed with that 1091);
// this test makes the same state by running the first statement by hand.
// Finding (attack4), not fixed.
func TestAttack4MigrateUpAfterAKilledMigratorMySQL(t *testing.T) {
	t.Skip("attack4 finding, not fixed: a MariaDB migrator killed inside 00015 leaves a state migrate up cannot pass (1091); needs idempotent recovery for 00015's statements (see the comment)")
	testdb.EachDialectOf(t, []eventfold.Dialect{eventfold.MySQL}, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		require.NoError(t, err)
		defer drv.Close()
		store := eventfold.New(drv, nil)
		_, err = store.MigrateUpTo(ctx, 14)
		require.NoError(t, err)
		// The killed migrator's first statement of 00015.
		_, err = drv.DB().ExecContext(ctx, "ALTER TABLE eventfold_events DROP CONSTRAINT eventfold_events_position_positive")
		require.NoError(t, err)
		require.NoError(t, store.Migrate(ctx), "migrate up after a migrator killed inside 00015")
	})
}
