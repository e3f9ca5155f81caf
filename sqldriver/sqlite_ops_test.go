package sqldriver_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestSQLiteOpsAppendOutsideTxIsAtomic: Driver.Ops() runs outside any
// transaction; an Append there must still be all or nothing, as on the
// other dialects. A duplicate id in the second event used to leave the
// stream's version advanced with no events behind it.
func TestSQLiteOpsAppendOutsideTxIsAtomic(t *testing.T) {
	ctx := context.Background()
	d, err := sqldriver.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "ef.db"))
	require.NoError(t, err)
	defer d.Close()
	store := eventfold.New(d, nil)
	require.NoError(t, store.Migrate(ctx))
	first, err := store.Append(ctx, "s", eventfold.NoStream, eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)})
	require.NoError(t, err)
	events := []eventfold.EventData{
		{ID: uuid.NewString(), Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)},
		{ID: first[0].ID, Type: "T", Data: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)},
	}
	_, err = d.Ops().Append(ctx, "s", eventfold.Exact(1), events)
	require.ErrorIs(t, err, eventfold.ErrDuplicateEventID, "append with a duplicate id")
	v, err := store.StreamVersion(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, int64(1), v, "stream version after a failed append")
	evs, err := store.ReadStream(ctx, "s", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	require.Len(t, evs, 1, "stream after a failed append")
}
