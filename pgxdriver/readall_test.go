package pgxdriver_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

func TestReadAllOrder(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	a, b := streamID(t, "a"), streamID(t, "b")
	first, err := s.Append(ctx, a, eventfold.NoStream, ev("A", `1`), ev("A", `2`))
	require.NoError(t, err)
	_, err = s.Append(ctx, b, eventfold.NoStream, ev("B", `1`))
	require.NoError(t, err)
	_, err = s.Append(ctx, a, eventfold.Exact(2), ev("A", `3`))
	require.NoError(t, err)

	from := first[0].GlobalPosition
	got := readAllUntil(t, s, from, []string{a, b}, func(es []eventfold.Event) bool { return len(es) == 4 })
	require.Equal(t, []string{a, a, b, a}, []string{got[0].StreamID, got[1].StreamID, got[2].StreamID, got[3].StreamID})
	for i := 1; i < len(got); i++ {
		require.Less(t, got[i-1].GlobalPosition, got[i].GlobalPosition)
	}

	// Limit and From page through the same sequence.
	page, err := s.ReadAll(ctx, eventfold.ReadAllOptions{From: got[1].GlobalPosition, Limit: 1})
	require.NoError(t, err)
	require.Len(t, page, 1)
	require.Equal(t, got[1].GlobalPosition, page[0].GlobalPosition)

	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, head, got[3].GlobalPosition)
}

// TestReadAllOutOfOrderCommit is the classic lost-event bug: a transaction
// that took its position first commits last. A reader that checkpoints
// "last position seen" must not see the later one before the earlier one.
func TestReadAllOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	d := s.Driver()
	a, b, c, after := streamID(t, "a"), streamID(t, "b"), streamID(t, "rolledback"), streamID(t, "after")

	txA, err := d.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = d.Rollback(ctx, txA) }()
	evA, err := s.AppendTx(ctx, txA, a, eventfold.NoStream, ev("A", `1`))
	require.NoError(t, err)

	txB, err := d.Begin(ctx)
	require.NoError(t, err)
	evB, err := s.AppendTx(ctx, txB, b, eventfold.NoStream, ev("B", `1`))
	require.NoError(t, err)
	require.NoError(t, d.Commit(ctx, txB))
	require.Greater(t, evB[0].GlobalPosition, evA[0].GlobalPosition, "B took its position after A")

	// B is committed but A, with a lower position, is still running: a
	// reader must not get B yet, or it would move past A's position.
	from := evA[0].GlobalPosition
	got, err := s.ReadAll(ctx, eventfold.ReadAllOptions{From: from, Limit: 10000})
	require.NoError(t, err)
	for _, e := range got {
		require.NotEqual(t, b, e.StreamID, "B's event was returned while A (lower position) is uncommitted")
		require.NotEqual(t, a, e.StreamID)
	}
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Less(t, head, evA[0].GlobalPosition, "Head must stay below the running transaction")
	// B's own stream is readable at once: only the global log waits.
	vb, err := s.StreamVersion(ctx, b)
	require.NoError(t, err)
	require.Equal(t, int64(1), vb)

	// A transaction that rolls back leaves nothing.
	txC, err := d.Begin(ctx)
	require.NoError(t, err)
	_, err = s.AppendTx(ctx, txC, c, eventfold.NoStream, ev("C", `1`))
	require.NoError(t, err)
	require.NoError(t, d.Rollback(ctx, txC))

	require.NoError(t, d.Commit(ctx, txA))
	_, err = s.Append(ctx, after, eventfold.NoStream, ev("After", `1`))
	require.NoError(t, err)

	mine := readAllUntil(t, s, from, []string{a, b, c, after}, func(es []eventfold.Event) bool { return len(es) >= 3 })
	require.Len(t, mine, 3)
	require.Equal(t, []string{a, b, after}, []string{mine[0].StreamID, mine[1].StreamID, mine[2].StreamID}, "position order, A first; nothing of the rolled-back C")
	vc, err := s.StreamVersion(ctx, c)
	require.NoError(t, err)
	require.Zero(t, vc)
}

// TestAppendReturnsStoredJSON: through pgx's native protocol too, Append
// returns data and metadata in jsonb's form, the bytes every reader gets.
func TestAppendReturnsStoredJSON(t *testing.T) {
	t.Parallel()
	s := store(t)
	ctx := context.Background()
	a := streamID(t, "json")
	got, err := s.Append(ctx, a, eventfold.NoStream, eventfold.EventData{
		Type: "J", Data: []byte(`{"b":1e400,"a":1,"a":2}`), Metadata: []byte(`{ "z":1,"y" :2 }`)})
	require.NoError(t, err)
	read, err := s.ReadStream(ctx, a, eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, read, 1)
	require.Equal(t, string(read[0].Data), string(got[0].Data))
	require.Equal(t, string(read[0].Metadata), string(got[0].Metadata))
	require.Equal(t, `{"y": 2, "z": 1}`, string(got[0].Metadata))
}
