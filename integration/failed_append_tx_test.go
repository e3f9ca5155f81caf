package integration

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestFailedAppendLeavesCallersTxClean: an append that fails inside the
// caller's transaction (here a duplicate event id, which the database
// finds only when it inserts the events) must leave nothing of itself in
// that transaction, so a caller that handles the error and commits its
// other work stores no half of the append. On MariaDB the procedure had
// already raised the stream's version and taken a position when the insert
// failed, and only the failing statement was undone: after the commit the
// stream stood at version 1 with no event (every append expecting its
// real version, 0, then failed for ever) and the position was a dead hole.
func TestFailedAppendLeavesCallersTxClean(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			store := testdb.SQLStore(t, d)
			id := uuid.NewString()
			_, err := store.Append(ctx, "first", eventfold.NoStream, eventfold.EventData{ID: id, Type: "T", Data: []byte(`{}`)})
			require.NoError(t, err)

			tx, err := store.Driver().DB().BeginTx(ctx, nil)
			require.NoError(t, err)
			fresh := uuid.NewString()
			_, err = store.AppendTx(ctx, tx, "second", eventfold.NoStream,
				eventfold.EventData{ID: fresh, Type: "T", Data: []byte(`{}`)},
				eventfold.EventData{ID: id, Type: "T", Data: []byte(`{}`)})
			require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
			if cerr := tx.Commit(); cerr != nil {
				// PostgreSQL: the failed statement aborted the transaction,
				// so the commit rolls it back; that is clean too.
				require.Equal(t, eventfold.Postgres, d, "commit: %v", cerr)
			}

			v, err := store.StreamVersion(ctx, "second")
			require.NoError(t, err)
			require.Zero(t, v, "the failed append left the stream's version behind")
			got, err := store.ReadStream(ctx, "second", eventfold.ReadStreamOptions{})
			require.NoError(t, err)
			require.Empty(t, got, "the failed append left an event behind")
			evs, err := store.Append(ctx, "second", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
			require.NoError(t, err, "the stream is usable")
			require.Equal(t, int64(1), evs[0].StreamVersion)
		})
	}
}
