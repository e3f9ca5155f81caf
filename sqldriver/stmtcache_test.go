package sqldriver

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
)

// openSQLite opens a migrated SQLite store whose pool has conns connections.
func openSQLite(t *testing.T, conns int) (*Driver, *eventfold.Store[*sql.Tx]) {
	t.Helper()
	ctx := context.Background()
	d, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "ef.db"))
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	d.DB().SetMaxOpenConns(conns)
	store := eventfold.New(d, nil)
	require.NoError(t, store.Migrate(ctx))
	return d, store
}

func cachedCount(d *Driver) int {
	d.stmts.mu.RLock()
	defer d.stmts.mu.RUnlock()
	return len(d.stmts.stmts)
}

// TestSQLiteStmtCachePreparesAppendStatements: after a few appends the
// append's statements run prepared, with a pool of ONE connection (where
// preparing inside a transaction would wait for itself forever), and the
// appends return what they returned unprepared.
func TestSQLiteStmtCachePreparesAppendStatements(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, store := openSQLite(t, 1)
	ev := eventfold.EventData{Type: "T", Data: json.RawMessage(`{"a":1}`)}
	var firstID string
	for i := range 5 {
		got, err := store.Append(ctx, "s", eventfold.Exact(int64(i)), ev)
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, int64(i+1), got[0].StreamVersion)
		require.Equal(t, int64(i+1), got[0].GlobalPosition)
		require.JSONEq(t, `{"a":1}`, string(got[0].Data))
		require.False(t, got[0].RecordedAt.IsZero())
		if i == 0 {
			firstID = got[0].ID
		}
	}
	require.Positive(t, cachedCount(d), "no statement was prepared")

	// A failed append inside a transaction still leaves no trace (its
	// savepoint is undone through the prepared statements).
	err := store.InTx(ctx, func(tx *sql.Tx) error {
		// The second event's id is stored already: the database refuses
		// it after the stream advanced and the first event was inserted.
		_, err := store.AppendTx(ctx, tx, "s", eventfold.Any,
			eventfold.EventData{ID: uuid.NewString(), Type: "T", Data: json.RawMessage(`{}`)},
			eventfold.EventData{ID: firstID, Type: "T", Data: json.RawMessage(`{}`)})
		require.ErrorIs(t, err, eventfold.ErrDuplicateEventID)
		_, err = store.AppendTx(ctx, tx, "s", eventfold.Exact(5), ev)
		require.NoError(t, err)
		evs, err := store.ReadStreamTx(ctx, tx, "s", eventfold.ReadStreamOptions{})
		require.NoError(t, err)
		require.Len(t, evs, 6)
		return nil
	})
	require.NoError(t, err)
	v, err := store.StreamVersion(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, int64(6), v)

	// After Close the cache prepares nothing more and holds nothing.
	require.NoError(t, d.Close())
	require.Zero(t, cachedCount(d))
}

// TestSQLiteStmtCacheConcurrentAppends: many writers on a small pool,
// each statement prepared once per connection and shared; every append
// gets its own version and position, none is lost.
func TestSQLiteStmtCacheConcurrentAppends(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	d, store := openSQLite(t, 2)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				_, err := store.Append(ctx, fmt.Sprintf("s-%d", w%3), eventfold.Any, eventfold.EventData{Type: "T", Data: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{Limit: writers * each})
	require.NoError(t, err)
	require.Len(t, evs, writers*each)
	for i, ev := range evs {
		require.Equal(t, int64(i+1), ev.GlobalPosition)
	}
	require.Positive(t, cachedCount(d))
}

// TestSQLiteStmtCacheBeforeMigrate: statements that fail to prepare (no
// schema yet) are not cached and do not break the store once it is
// migrated.
func TestSQLiteStmtCacheBeforeMigrate(t *testing.T) {
	ctx := context.Background()
	d, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "ef.db"))
	require.NoError(t, err)
	defer d.Close()
	store := eventfold.New(d, nil)
	ev := eventfold.EventData{Type: "T", Data: json.RawMessage(`{}`)}
	for range 3 {
		_, err := store.Append(ctx, "s", eventfold.Any, ev)
		require.Error(t, err, "append before migrate")
	}
	require.NoError(t, store.Migrate(ctx))
	for i := range 3 {
		got, err := store.Append(ctx, "s", eventfold.Any, ev)
		require.NoError(t, err)
		require.Equal(t, int64(i+1), got[0].StreamVersion)
	}
	require.Positive(t, cachedCount(d))
}
