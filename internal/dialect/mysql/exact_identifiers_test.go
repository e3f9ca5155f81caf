package mysql_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestIdentifiersCompareByteExactly runs identifier pairs that differ only
// by a trailing space through every eventfold table. MariaDB's utf8mb4_bin
// is PAD SPACE ('a' = 'a '): before 00005 command id "pay-X " found the
// record of "pay-X" (its events returned as a duplicate, the payment
// dropped) and subscription "billing-X " shared the checkpoint of
// "billing-X".
func TestIdentifiersCompareByteExactly(t *testing.T) {
	t.Parallel()
	runExactIdentifierPairs(t, latestDB(t))
}

func runExactIdentifierPairs(t *testing.T, db *sql.DB) {
	ctx := context.Background()
	ops := mysqlops.New(db)

	t.Run("commands", func(t *testing.T) {
		dup, err := ops.RecordCommand(ctx, "", "pay-X", "Pay", "", []byte(`[{"s": "acct-1", "v": 1}]`))
		require.NoError(t, err)
		require.False(t, dup)
		_, _, _, found, err := ops.LookupCommand(ctx, "", "pay-X ")
		require.NoError(t, err)
		require.False(t, found, `"pay-X " must not find the record of "pay-X"`)
		dup, err = ops.RecordCommand(ctx, "", "pay-X ", "Pay", "", []byte(`[{"s": "acct-2", "v": 1}]`))
		require.NoError(t, err)
		require.False(t, dup, `"pay-X " is a command of its own`)
		_, _, refs, found, err := ops.LookupCommand(ctx, "", "pay-X ")
		require.NoError(t, err)
		require.True(t, found)
		require.JSONEq(t, `[{"s": "acct-2", "v": 1}]`, string(refs))
		_, _, refs, _, err = ops.LookupCommand(ctx, "", "pay-X")
		require.NoError(t, err)
		require.JSONEq(t, `[{"s": "acct-1", "v": 1}]`, string(refs))
	})

	t.Run("checkpoints", func(t *testing.T) {
		require.NoError(t, ops.CreateCheckpoint(ctx, "billing-X", 45))
		_, found, err := ops.GetCheckpoint(ctx, "billing-X ")
		require.NoError(t, err)
		require.False(t, found, `"billing-X " must not share the checkpoint of "billing-X"`)
		require.NoError(t, ops.CreateCheckpoint(ctx, "billing-X ", 0))
		pos, found, err := ops.GetCheckpoint(ctx, "billing-X ")
		require.NoError(t, err)
		require.True(t, found)
		require.Zero(t, pos)
		moved, err := ops.AdvanceCheckpoint(ctx, "billing-X ", 0, 3)
		require.NoError(t, err)
		require.True(t, moved)
		pos, _, err = ops.GetCheckpoint(ctx, "billing-X")
		require.NoError(t, err)
		require.Equal(t, int64(45), pos, "advancing the other subscription left this one alone")
		require.NoError(t, ops.DeleteCheckpoint(ctx, "billing-X "))
		_, found, err = ops.GetCheckpoint(ctx, "billing-X")
		require.NoError(t, err)
		require.True(t, found, "deleting the other subscription left this one alone")
		names := map[string]int64{}
		rows, err := ops.ListCheckpoints(ctx)
		require.NoError(t, err)
		for _, r := range rows {
			names[r.Name] = r.Position
		}
		require.Equal(t, int64(45), names["billing-X"])
		require.NotContains(t, names, "billing-X ")
	})

	t.Run("leases", func(t *testing.T) {
		acquire := func(name, owner string) bool {
			tx := begin(t, db)
			ok, err := mysqlops.New(tx).AcquireLease(ctx, name, owner, time.Minute)
			require.NoError(t, err)
			require.NoError(t, tx.Commit())
			return ok
		}
		require.True(t, acquire("billing-X", "worker-1"))
		require.True(t, acquire("billing-X ", "worker-2"), `"billing-X " has a lease of its own`)
		require.False(t, acquire("billing-X", "worker-1 "), `owner "worker-1 " is not "worker-1"`)
		owner, err := ops.LeaseOwner(ctx, "billing-X")
		require.NoError(t, err)
		require.Equal(t, "worker-1", owner)
		require.NoError(t, ops.ReleaseLease(ctx, "billing-X", "worker-1 "))
		owner, err = ops.LeaseOwner(ctx, "billing-X")
		require.NoError(t, err)
		require.Equal(t, "worker-1", owner, `"worker-1 " cannot release the lease of "worker-1"`)
	})

	t.Run("streams and types", func(t *testing.T) {
		// Store refuses stream ids that end with a space (SQL Server still
		// pads); the dialect, and a DBA's CALL, must keep them apart anyway.
		a, err := ops.Append(ctx, "acct-X", eventfold.NoStream, []eventfold.EventData{newEvent("Opened")})
		require.NoError(t, err)
		b, err := ops.Append(ctx, "acct-X ", eventfold.NoStream, []eventfold.EventData{newEvent("Opened "), newEvent("Opened ")})
		require.NoError(t, err, `"acct-X " is a new stream, not "acct-X"`)
		require.Equal(t, int64(1), b[0].StreamVersion)
		for id, want := range map[string]int64{"acct-X": 1, "acct-X ": 2} {
			v, err := ops.StreamVersion(ctx, id)
			require.NoError(t, err)
			require.Equal(t, want, v, "stream %q", id)
			evs, err := ops.ReadStream(ctx, id, 1, 10, false)
			require.NoError(t, err)
			require.Len(t, evs, int(want))
			for _, e := range evs {
				require.Equal(t, id, e.StreamID)
			}
		}
		_, err = ops.Append(ctx, "acct-X", eventfold.Exact(1), []eventfold.EventData{newEvent("Closed")})
		require.NoError(t, err, "the version of acct-X is its own")
		all, err := ops.ReadAll(ctx, a[0].GlobalPosition, 10)
		require.NoError(t, err)
		require.Len(t, all, 4)
		require.Equal(t, "Opened ", all[1].Type, "the type is stored as sent")
		types := map[string]int64{}
		counts, err := ops.StatsEventTypes(ctx)
		require.NoError(t, err)
		for _, c := range counts {
			types[c.Key] = c.Events
		}
		require.Equal(t, int64(1), types["Opened"])
		require.Equal(t, int64(2), types["Opened "], "types differing by a trailing space are counted apart")
	})
}
