package eventfold_test

import (
	"context"
	"database/sql"
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

// TestMigration00020MySQLUpgrade: from 00019 with events, an append inside
// an XA transaction is accepted (the branch takes a position; on MariaDB
// XA PREPARE would release its gate lock, see sql/mysql/00020). Migrate up:
// the library's append and eventfold_append_events inside XA are refused
// (31005) and write nothing, while ordinary appends (a bare CALL, the
// library's, inside START TRANSACTION) go on in position order with the
// events from before. Down restores 00019's procedures (XA accepted
// again), and Up again refuses.
func TestMigration00020MySQLUpgrade(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	db := store.Driver().DB()
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 19)
	require.NoError(t, err)

	appendOne := func(stream string) int64 {
		t.Helper()
		evs, err := store.Append(ctx, stream, eventfold.Any, positionData)
		require.NoError(t, err)
		return evs[0].GlobalPosition
	}
	call := func(db interface {
		ExecContext(context.Context, string, ...any) (sql.Result, error)
	}, stream string) error {
		_, err := db.ExecContext(ctx, `CALL eventfold_append_events(?, -1, ?)`, stream,
			fmt.Sprintf(`[{"id":%q,"type":"T","data":{}}]`, uuid.NewString()))
		return err
	}
	for i := int64(1); i <= 3; i++ {
		require.Equal(t, i, appendOne("s-1"))
	}
	// inXA runs an append of the library and one of eventfold_append_events
	// inside an XA branch that is then rolled back, and returns their errors.
	inXA := func() (lib, dba error) {
		t.Helper()
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		defer func() {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // not back to the pool
			_ = conn.Close()
		}()
		xid := "'eventfold-m20-" + uuid.NewString() + "'"
		_, err = conn.ExecContext(ctx, "XA START "+xid)
		require.NoError(t, err)
		_, lib = conn.ExecContext(ctx, `CALL eventfold_append_one('xa', -1, ?, 'T', '{}', '{}')`, uuid.NewString())
		dba = call(conn, "xa")
		_, err = conn.ExecContext(ctx, "XA END "+xid)
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, "XA ROLLBACK "+xid)
		require.NoError(t, err)
		return lib, dba
	}
	refused := func(err error) {
		t.Helper()
		var me *mysql.MySQLError
		require.ErrorAs(t, err, &me)
		require.Equal(t, uint16(31005), me.Number, me.Message)
	}
	lib, dba := inXA()
	require.NoError(t, lib, "00019 accepts an append inside XA")
	require.NoError(t, dba, "00019 accepts an append inside XA")

	_, err = p.UpTo(ctx, 20)
	require.NoError(t, err)
	lib, dba = inXA()
	refused(lib)
	refused(dba)
	// Ordinary appends go on: the library's, a bare CALL, a CALL inside
	// START TRANSACTION (positions 4 and 5 were the XA branch's, rolled back).
	require.Equal(t, int64(6), appendOne("s-2"))
	require.NoError(t, call(db, "dba"))
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	require.NoError(t, call(tx, "dba"))
	require.NoError(t, tx.Commit())
	h, err := store.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(8), h)

	_, err = p.DownTo(ctx, 19)
	require.NoError(t, err)
	lib, dba = inXA()
	require.NoError(t, lib, "Down restores 00019's procedures")
	require.NoError(t, dba, "Down restores 00019's procedures")
	_, err = p.UpTo(ctx, 20)
	require.NoError(t, err)
	lib, dba = inXA()
	refused(lib)
	refused(dba)
	require.Equal(t, int64(11), appendOne("s-1"))

	evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{Limit: 100})
	require.NoError(t, err)
	var got []int64
	for _, e := range evs {
		got = append(got, e.GlobalPosition)
	}
	require.Equal(t, []int64{1, 2, 3, 6, 7, 8, 11}, got, "nothing of the XA branches, everything else in order")
}
