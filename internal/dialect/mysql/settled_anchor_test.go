package mysql_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestSettledMarkAnchor: the pool's settled mark is anchored on the event
// at its position (see settledBelow in read.go). While that event is in
// place the anchor Head reads matches the one the mark was set with (on
// the no-gate path, the gate path and ReadAll's gap path alike), so a pool
// keeps trusting its mark (were the anchors spelt differently, every Head
// would prove from the floor again); once the event at the mark is
// replaced (deleted, AUTO_INCREMENT put back, a new event appended at the
// same position) the mark is no longer trusted and Head drops it.
func TestSettledMarkAnchor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	ops := mysqlops.New(db)
	appendN := func(n int) {
		t.Helper()
		for range n {
			_, err := ops.Append(ctx, "anchor", eventfold.Any, []eventfold.EventData{newEvent("A")})
			require.NoError(t, err)
		}
	}
	mark := func() (int64, bool) {
		t.Helper()
		pos, trusted, err := mysqlops.SettledMarkForTest(ctx, db)
		require.NoError(t, err)
		return pos, trusted
	}
	appendN(5)
	h, err := ops.Head(ctx) // no hole: proven without the gate
	require.NoError(t, err)
	require.Equal(t, int64(5), h)
	pos, trusted := mark()
	require.Equal(t, int64(5), pos)
	require.True(t, trusted, "the anchor of a mark set on the no-gate path")

	// A dead position (a rolled-back append) below committed ones: Head
	// takes the gate, ReadAll fills the gap.
	tx := begin(t, db)
	_, err = mysqlops.New(tx).Append(ctx, "dead", eventfold.NoStream, []eventfold.EventData{newEvent("Dead")})
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	appendN(2) // 7, 8
	evs, err := ops.ReadAll(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 4, 5, 7, 8}, positionsOf(evs))
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(8), h)
	pos, trusted = mark()
	require.Equal(t, int64(8), pos)
	require.True(t, trusted, "the anchor of a mark set past a dead position")

	// The event at the mark replaced by another at the same position.
	_, err = db.ExecContext(ctx, `DELETE FROM eventfold_events WHERE global_position = 8`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE eventfold_streams SET version = version - 1 WHERE stream_id = 'anchor'`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `ALTER TABLE eventfold_events AUTO_INCREMENT = 8`)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `UPDATE eventfold_position SET last_position = LEAST(last_position, 7) WHERE id = 1`)
	require.NoError(t, err)
	appendN(1)
	var at int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT MAX(global_position) FROM eventfold_events`).Scan(&at))
	require.Equal(t, int64(8), at, "a new event at the mark's position")
	pos, trusted = mark()
	require.Equal(t, int64(8), pos)
	require.False(t, trusted, "another event at the mark's position")
	h, err = ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(8), h)
	pos, trusted = mark()
	require.Equal(t, int64(8), pos, "Head proved the new 8 and anchored on it")
	require.True(t, trusted)
}
