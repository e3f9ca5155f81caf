package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
	"github.com/eventfold/eventfold/internal/testdb"
)

// stdTestDB returns a database/sql handle (pgx stdlib) on a fresh, migrated
// database of its own, dropped when the test ends (package testdb).
func stdTestDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", testdb.DSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newEvent(typ, data string) eventfold.EventData {
	return eventfold.EventData{ID: uuid.NewString(), Type: typ, Data: []byte(data), Metadata: []byte(`{}`)}
}

func TestStdRoundTrip(t *testing.T) {
	t.Parallel()
	db := stdTestDB(t)
	ctx := context.Background()
	ops := postgres.NewStd(db)

	// Append inside a database/sql transaction, with a savepoint on the way.
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	require.NoError(t, err)
	txOps := postgres.NewStd(tx)
	in := []eventfold.EventData{newEvent("Opened", `{"owner":"Ada"}`), newEvent("Deposited", `{"amount":100}`)}
	in[0].Metadata = []byte(`{"correlation_id":"c1"}`)
	out, err := txOps.Append(ctx, "acct-1", eventfold.NoStream, in)
	require.NoError(t, err)
	require.Len(t, out, 2)
	require.NoError(t, txOps.Exec(ctx, "SAVEPOINT sp"))
	_, err = txOps.Append(ctx, "acct-2", eventfold.NoStream, []eventfold.EventData{newEvent("Opened", `{}`)})
	require.NoError(t, err)
	require.NoError(t, txOps.Exec(ctx, "ROLLBACK TO SAVEPOINT sp"))
	require.NoError(t, tx.Commit())

	require.Equal(t, []int64{1, 2}, []int64{out[0].StreamVersion, out[1].StreamVersion})
	require.Equal(t, in[0].ID, out[0].ID)
	require.Equal(t, time.UTC, out[0].RecordedAt.Location())

	fwd, err := ops.ReadStream(ctx, "acct-1", 1, 10, false)
	require.NoError(t, err)
	require.Len(t, fwd, 2)
	for i := range fwd {
		require.Equal(t, out[i].GlobalPosition, fwd[i].GlobalPosition)
		require.Equal(t, out[i].ID, fwd[i].ID)
		require.Equal(t, "acct-1", fwd[i].StreamID)
		require.Equal(t, in[i].Type, fwd[i].Type)
		require.JSONEq(t, string(in[i].Data), string(fwd[i].Data))
		require.JSONEq(t, string(in[i].Metadata), string(fwd[i].Metadata))
		require.True(t, out[i].RecordedAt.Equal(fwd[i].RecordedAt))
		require.Equal(t, time.UTC, fwd[i].RecordedAt.Location())
	}
	back, err := ops.ReadStream(ctx, "acct-1", 0, 1, true)
	require.NoError(t, err)
	require.Len(t, back, 1)
	require.Equal(t, int64(2), back[0].StreamVersion)

	v, err := ops.StreamVersion(ctx, "acct-1")
	require.NoError(t, err)
	require.Equal(t, int64(2), v)
	v, err = ops.StreamVersion(ctx, "acct-2")
	require.NoError(t, err)
	require.Zero(t, v, "missing stream (rolled back to the savepoint) is at version 0")

	// Other sessions on the cluster may hold the horizon back for a moment.
	var all []eventfold.Event
	require.Eventually(t, func() bool {
		all, err = ops.ReadAll(ctx, 0, 100)
		return err == nil && len(all) == 2
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, out[0].GlobalPosition, all[0].GlobalPosition)
	require.Equal(t, out[1].GlobalPosition, all[1].GlobalPosition)
	head, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, out[1].GlobalPosition, head)
}

func TestStdErrors(t *testing.T) {
	t.Parallel()
	db := stdTestDB(t)
	ctx := context.Background()
	ops := postgres.NewStd(db)

	first := newEvent("A", `1`)
	_, err := ops.Append(ctx, "s", eventfold.NoStream, []eventfold.EventData{first, newEvent("B", `2`)})
	require.NoError(t, err)

	_, err = ops.Append(ctx, "s", eventfold.Exact(1), []eventfold.EventData{newEvent("C", `3`)})
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.Equal(t, int64(2), wev.Actual)
	require.Equal(t, "s", wev.StreamID)
	require.Equal(t, eventfold.Exact(1), wev.Expected)

	_, err = ops.Append(ctx, "t", eventfold.StreamExists, []eventfold.EventData{newEvent("C", `3`)})
	require.ErrorAs(t, err, &wev)
	require.Zero(t, wev.Actual)

	dup := newEvent("D", `4`)
	dup.ID = first.ID
	_, err = ops.Append(ctx, "u", eventfold.Any, []eventfold.EventData{dup})
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)

	// Bad input that Store would have caught still fails cleanly in SQL.
	_, err = ops.Append(ctx, "v", eventfold.Any, nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "no events to append")
}

func TestStdConnMissingStream(t *testing.T) {
	t.Parallel()
	db := stdTestDB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	v, err := postgres.NewStd(conn).StreamVersion(ctx, "nope")
	require.NoError(t, err)
	require.Zero(t, v)
}
