package eventfold_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestAttack4RepairRefusedOnNewerSchema: on a MySQL/MariaDB database
// migrated beyond this binary, Store.CheckPositions with repair (what
// `esctl doctor --repair` runs) still wrote: it raised the position floor
// and AUTO_INCREMENT by what this binary knows of positions, although every
// other write (Append, Dispatch, Migrate, esctl archive/restore/migrate up)
// is refused with ErrSchemaNewer. Failed on merge-trial ae16301 (Repaired
// true, AUTO_INCREMENT raised); now refused, nothing written. The check
// without repair only reads and still answers.
func TestAttack4RepairRefusedOnNewerSchema(t *testing.T) {
	testdb.EachDialectOf(t, []eventfold.Dialect{eventfold.MySQL}, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		store := testdb.SQLStore(t, d)
		db := store.Driver().DB()
		for range 3 {
			_, err := store.Append(ctx, "s", eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
			require.NoError(t, err)
		}
		// The floor a reader's gate take records (sql/mysql/00019), then the
		// events go: the log is ahead of AUTO_INCREMENT.
		_, err := db.ExecContext(ctx, `UPDATE eventfold_position SET last_position = 3 WHERE id = 1`)
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `TRUNCATE TABLE eventfold_events`)
		require.NoError(t, err)
		markSchemaNewer(t, d, db)
		autoInc := func() int64 {
			var v int64
			require.NoError(t, db.QueryRowContext(ctx, `SELECT /*+ SET_VAR(information_schema_stats_expiry = 0) */ AUTO_INCREMENT
FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'eventfold_events'`).Scan(&v))
			return v
		}
		before := autoInc()

		fresh := eventfold.New(store.Driver(), nil)
		res, err := fresh.CheckPositions(ctx, false)
		require.NoError(t, err, "the check alone only reads")
		require.True(t, res.Moved)

		_, err = fresh.CheckPositions(ctx, true)
		require.ErrorIs(t, err, eventfold.ErrSchemaNewer)
		require.Equal(t, before, autoInc(), "nothing written")
	})
}
