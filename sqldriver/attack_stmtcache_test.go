package sqldriver

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

// TestAttackStmtCacheSchemaReplacedUnderRunningApp (SQLite): while an app
// holds prepared statements, another process (an operator's esctl
// migrate down then up) drops every eventfold table and creates it again.
// The app's next appends must work on the new tables (SQLite re-prepares
// a statement whose schema changed), and while the schema is gone an
// append must fail cleanly, with nothing cached that breaks the appends
// after the schema is back.
func TestAttackStmtCacheSchemaReplacedUnderRunningApp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "ef.db")
	app, err := Open(ctx, "sqlite://"+path)
	require.NoError(t, err)
	t.Cleanup(func() { app.Close() })
	app.DB().SetMaxOpenConns(2)
	store := eventfold.New(app, nil)
	require.NoError(t, store.Migrate(ctx))
	ev := eventfold.EventData{Type: "T", Data: json.RawMessage(`{"a":1}`)}
	for range 5 {
		_, err := store.Append(ctx, "s", eventfold.Any, ev)
		require.NoError(t, err)
	}
	require.Positive(t, cachedCount(app))

	op, err := Open(ctx, "sqlite://"+path)
	require.NoError(t, err)
	defer op.Close()
	p, err := eventfold.NewMigrator(eventfold.SQLite, op.DB())
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err)

	for range 4 { // beyond maxPrepareFailures
		_, err = store.Append(ctx, "s", eventfold.Any, ev)
		require.Error(t, err)
	}
	_, err = p.Up(ctx)
	require.NoError(t, err)
	for i := range 5 {
		got, err := store.Append(ctx, "s", eventfold.Any, ev)
		require.NoError(t, err, "append %d after the schema came back", i)
		require.Equal(t, int64(i+1), got[0].StreamVersion)
	}
	evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Len(t, evs, 5)
}

// TestAttackStmtCacheCancelledMidStatement (SQLite): appends whose context
// ends at random points (before BEGIN, between prepared statements, during
// COMMIT) on a pool of two connections sharing prepared statements. Every
// later append must still work, and the log must hold each stream's
// versions without a hole or a repeat.
func TestAttackStmtCacheCancelledMidStatement(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, store := openSQLite(t, 2)
	ev := eventfold.EventData{Type: "T", Data: json.RawMessage(`{"a":1}`)}
	var wg sync.WaitGroup
	var cancelled atomic.Int64
	for w := range 6 {
		wg.Go(func() {
			stream := fmt.Sprintf("s-%d", w%3)
			for i := range 150 {
				cctx, ccancel := context.WithTimeout(ctx, time.Duration((i*37+w*11)%8000)*time.Microsecond)
				_, err := store.Append(cctx, stream, eventfold.Any, ev, ev)
				ccancel()
				if err != nil {
					if cctx.Err() == nil {
						t.Errorf("append failed without cancellation: %v", err)
						return
					}
					cancelled.Add(1)
				}
			}
			_, err := store.Append(ctx, stream, eventfold.Any, ev)
			if err != nil {
				t.Errorf("append after the cancellations: %v", err)
			}
		})
	}
	wg.Wait()
	require.Positive(t, cachedCount(d))
	t.Logf("%d appends cancelled", cancelled.Load())
	evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	version := map[string]int64{}
	for i, e := range evs {
		require.Equal(t, version[e.StreamID]+1, e.StreamVersion, "stream %s", e.StreamID)
		version[e.StreamID] = e.StreamVersion
		if i > 0 {
			require.Greater(t, e.GlobalPosition, evs[i-1].GlobalPosition)
		}
	}
}
