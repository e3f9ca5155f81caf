package pgxdriver_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestStreamOrderLowerXidRefused reproduces the field report (migration
// 00014): transaction A takes its xid first (any write does; here
// pg_current_xact_id()), then B appends to stream S and commits, then A
// appends to S. Before 00014 A's events got positions below B's, so
// readers in position order saw version 2 before version 1. Now A's
// append is refused with ErrTransient (ErrStreamOrder, SQLSTATE EF003),
// nothing is written, and the same append in a new transaction lands in
// order.
func TestStreamOrderLowerXidRefused(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	id := streamID(t, "s")

	txA, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, txA) }()
	var xidA int64
	require.NoError(t, txA.QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xidA))

	b, err := s.Append(ctx, id, eventfold.NoStream, ev("B", `1`))
	require.NoError(t, err)
	require.Greater(t, b[0].GlobalPosition>>20, xidA, "B has the higher xid")

	out, err := s.AppendTx(ctx, txA, id, eventfold.Exact(1), ev("A", `1`), ev("A", `2`))
	if err == nil {
		require.FailNowf(t, "append below the stream's last event accepted",
			"version %d at position %d, below version 1 at %d", out[0].StreamVersion, out[0].GlobalPosition, b[0].GlobalPosition)
	}
	require.ErrorIs(t, err, eventfold.ErrTransient)
	require.ErrorIs(t, err, eventfold.ErrStreamOrder)
	require.Equal(t, "EF003", sqlState(err))
	require.NoError(t, d.Rollback(ctx, txA))

	v, err := s.StreamVersion(ctx, id)
	require.NoError(t, err)
	require.Equal(t, int64(1), v, "nothing written, the stream row untouched")

	// The retry: a new transaction, a higher xid.
	var retried []eventfold.Event
	require.NoError(t, s.InTx(ctx, func(tx pgx.Tx) error {
		retried, err = s.AppendTx(ctx, tx, id, eventfold.Exact(1), ev("A", `1`), ev("A", `2`))
		return err
	}))
	require.Greater(t, retried[0].GlobalPosition, b[0].GlobalPosition)
	requireStreamInPositionOrder(t, s, id, 3)
}

// TestStreamOrderOwnAndOtherStreams: what the check must not refuse. A
// transaction with a low xid may still append to streams a later
// transaction did not touch (other streams, new streams), and may append
// to a stream again after its own earlier append in the same transaction.
func TestStreamOrderOwnAndOtherStreams(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	mine, other, fresh := streamID(t, "mine"), streamID(t, "other"), streamID(t, "fresh")
	_, err := s.Append(ctx, mine, eventfold.NoStream, ev("M", `0`))
	require.NoError(t, err)

	txA, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, txA) }()
	_, err = txA.Exec(ctx, `SELECT pg_current_xact_id()`)
	require.NoError(t, err)
	_, err = s.Append(ctx, other, eventfold.NoStream, ev("O", `1`)) // a later xid, another stream
	require.NoError(t, err)

	_, err = s.AppendTx(ctx, txA, mine, eventfold.Exact(1), ev("M", `1`))
	require.NoError(t, err, "written last by an earlier transaction")
	_, err = s.AppendTx(ctx, txA, mine, eventfold.Exact(2), ev("M", `2`))
	require.NoError(t, err, "its own earlier append in this transaction")
	_, err = s.AppendTx(ctx, txA, fresh, eventfold.NoStream, ev("F", `1`))
	require.NoError(t, err, "a new stream")
	require.NoError(t, d.Commit(ctx, txA))
	requireStreamInPositionOrder(t, s, mine, 3)
}

// requireStreamInPositionOrder checks that stream id has n events whose
// positions grow with their versions.
func requireStreamInPositionOrder(t *testing.T, s interface {
	ReadStream(context.Context, string, eventfold.ReadStreamOptions) ([]eventfold.Event, error)
}, id string, n int) {
	t.Helper()
	evs, err := s.ReadStream(context.Background(), id, eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, evs, n)
	for i := 1; i < len(evs); i++ {
		require.Equal(t, evs[i-1].StreamVersion+1, evs[i].StreamVersion)
		require.Greater(t, evs[i].GlobalPosition, evs[i-1].GlobalPosition,
			"stream %s: version %d at %d sorts before version %d at %d", id,
			evs[i].StreamVersion, evs[i].GlobalPosition, evs[i-1].StreamVersion, evs[i-1].GlobalPosition)
	}
}

// TestStreamOrderStoreAppendRetries: Store.Append, refused because a later
// transaction wrote to the stream first (EF003), retries once by itself in
// a new transaction. Since 00015 a lone Store.Append cannot get there any
// more (appenders of a stream take their transaction ids in the order they
// get the stream's lock; TestStreamOrderLowerXidRefused makes the real
// refusal with AppendTx), so a BEFORE INSERT trigger raises EF003, as
// eventfold.append_events does, on the first attempt only.
func TestStreamOrderStoreAppendRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, err := pgxdriver.Open(ctx, testdb.DSN(t, eventfold.Postgres)) // the trigger needs a database of its own
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	s := eventfold.New(drv, nil)
	pool := drv.Pool()
	id := "shared-1"
	_, err = s.Append(ctx, id, eventfold.NoStream, ev("V", `1`))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		CREATE SEQUENCE public.gate;
		CREATE FUNCTION public.refuse_first() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			-- nextval is not rolled back: only the very first call refuses.
			IF nextval('public.gate') = 1 THEN
				RAISE EXCEPTION 'eventfold: stream "%" was last written by a later transaction', NEW.stream_id
					USING ERRCODE = 'EF003';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_first BEFORE INSERT ON eventfold.events FOR EACH ROW EXECUTE FUNCTION public.refuse_first();`)
	require.NoError(t, err)

	a, err := s.Append(ctx, id, eventfold.Any, ev("A", `1`))
	require.NoError(t, err, "Store.Append retries a refused append by itself")
	require.Equal(t, int64(2), a[0].StreamVersion)
	var calls int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT last_value FROM public.gate`).Scan(&calls))
	require.Equal(t, int64(2), calls, "the refused attempt and the retry")
	requireStreamInPositionOrder(t, s, id, 2)
}
