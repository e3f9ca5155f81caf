package eventfold_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigration00021MySQLUpgrade: from 00020 with events, a session with
// autocommit=0 whose first statement is CALL eventfold_append_events keeps
// the append after its ROLLBACK (the CALL committed a transaction of its
// own), and eventfold_append_one refuses there with 31002. Migrate up: the
// same session's ROLLBACK undoes both CALLs, its COMMIT keeps them, and the
// library's appends, a bare CALL and a CALL inside START TRANSACTION go on
// with the events from before, versions and positions continuing. Down
// restores 00020's procedures (the old behaviour again), and Up again fixes
// it.
func TestMigration00021MySQLUpgrade(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	db := store.Driver().DB()
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 20)
	require.NoError(t, err)

	appendOne := func(stream string) eventfold.Event {
		t.Helper()
		evs, err := store.Append(ctx, stream, eventfold.Any, positionData)
		require.NoError(t, err)
		return evs[0]
	}
	events := func() string {
		return fmt.Sprintf(`[{"id":%q,"type":"T","data":{}}]`, uuid.NewString())
	}
	count := func(stream string) int {
		t.Helper()
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM eventfold_events WHERE stream_id = ?`, stream).Scan(&n))
		return n
	}
	// autocommitOff calls eventfold_append_events and then
	// eventfold_append_one for stream as the first statements of a session
	// with autocommit=0, ends the session's transaction with end, and returns
	// the two CALLs' errors.
	autocommitOff := func(stream, end string) (dba, lib error) {
		t.Helper()
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		defer func() {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // not back to the pool
			_ = conn.Close()
		}()
		_, err = conn.ExecContext(ctx, `SET autocommit = 0`)
		require.NoError(t, err)
		_, dba = conn.ExecContext(ctx, `CALL eventfold_append_events(?, -1, ?)`, stream, events())
		_, lib = conn.ExecContext(ctx, `CALL eventfold_append_one(?, -1, ?, 'T', '{}', '{}')`, stream, uuid.NewString())
		_, err = conn.ExecContext(ctx, end)
		require.NoError(t, err)
		return dba, lib
	}
	refused := func(err error) {
		t.Helper()
		var me *mysql.MySQLError
		require.ErrorAs(t, err, &me)
		require.Equal(t, uint16(31002), me.Number, me.Message)
	}
	old := func(stream string) {
		t.Helper()
		dba, lib := autocommitOff(stream, "ROLLBACK")
		require.NoError(t, dba)
		refused(lib)
		require.Equal(t, 1, count(stream), "00020: the CALL that came first committed on its own")
	}
	fixed := func(stream string) {
		t.Helper()
		dba, lib := autocommitOff(stream+"-rolled", "ROLLBACK")
		require.NoError(t, dba)
		require.NoError(t, lib)
		require.Zero(t, count(stream+"-rolled"), "the session's ROLLBACK undid both CALLs")
		dba, lib = autocommitOff(stream+"-kept", "COMMIT")
		require.NoError(t, dba)
		require.NoError(t, lib)
		require.Equal(t, 2, count(stream+"-kept"), "the session's COMMIT kept both CALLs")
	}

	for range 3 {
		appendOne("s-1")
	}
	old("m20")

	_, err = p.UpTo(ctx, 21)
	require.NoError(t, err)
	fixed("m21")
	// Ordinary appends go on: the library's, a bare CALL, a CALL inside
	// START TRANSACTION, versions continuing.
	require.Equal(t, int64(4), appendOne("s-1").StreamVersion)
	_, err = db.ExecContext(ctx, `CALL eventfold_append_events('m20', 1, ?)`, events())
	require.NoError(t, err)
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = tx.ExecContext(ctx, `CALL eventfold_append_events('m20', 2, ?)`, events())
	require.NoError(t, err)
	require.NoError(t, tx.Commit())

	_, err = p.DownTo(ctx, 20)
	require.NoError(t, err)
	old("down20")
	_, err = p.UpTo(ctx, 21)
	require.NoError(t, err)
	fixed("up21")
	last := appendOne("s-1")
	require.Equal(t, int64(5), last.StreamVersion)

	evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{Limit: 100})
	require.NoError(t, err)
	var got []string
	for i, e := range evs {
		if i > 0 {
			require.Greater(t, e.GlobalPosition, evs[i-1].GlobalPosition, "positions ascend")
		}
		got = append(got, fmt.Sprintf("%s@%d", e.StreamID, e.StreamVersion))
	}
	require.Equal(t, []string{
		"s-1@1", "s-1@2", "s-1@3", "m20@1",
		"m21-kept@1", "m21-kept@2", "s-1@4", "m20@2", "m20@3",
		"down20@1", "up21-kept@1", "up21-kept@2", "s-1@5",
	}, got, "every committed append, nothing of the rolled-back sessions, in order")
	h, err := store.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, last.GlobalPosition, h)
}
