package esctl

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestStatsShowsHeldBackLagPostgres: on PostgreSQL a running writing
// transaction (anywhere in the cluster) holds the read horizon back, so
// events that committed after it began are not readable yet. `esctl
// stats` used to show every subscription caught up (lag 0) then; it must
// report the events held back, per subscription too, and what holds the
// horizon: the oldest running transaction.
func TestStatsShowsHeldBackLagPostgres(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	defer drv.Close()
	store := eventfold.New(drv, nil)
	evs, err := store.Append(ctx, "held-1", eventfold.Any, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = store.WaitHead(wctx, evs[0].GlobalPosition)
	require.NoError(t, err)
	require.NoError(t, listener.SetCheckpoint(ctx, store, "projector", evs[0].GlobalPosition))

	// A transaction with an xid, left open: it holds the horizon.
	holder := testdb.HoldHorizon(t)

	_, err = store.Append(ctx, "held-1", eventfold.Any,
		eventfold.EventData{Type: "T", Data: []byte(`{}`)}, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
	require.NoError(t, err)

	var st map[string]any
	require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
	hb, ok := st["held_back"].(map[string]any)
	require.True(t, ok, "no held_back in %v", st)
	require.GreaterOrEqual(t, hb["events"], float64(2), "%v", hb)
	require.Greater(t, st["last_position"], st["head"])
	h, ok := hb["holder"].(map[string]any)
	require.True(t, ok, "no holder in %v", hb)
	// Other tests share the cluster: the oldest holder may be theirs, but
	// it is at least as old as ours.
	require.NotZero(t, h["pid"])
	require.Greater(t, h["xid_age"], float64(0))
	subs := st["subscriptions"].([]any)
	require.Len(t, subs, 1)
	sub := subs[0].(map[string]any)
	require.Equal(t, float64(0), sub["lag_events"], "readable lag")
	require.GreaterOrEqual(t, sub["held_back_events"], float64(2), "%v", sub)

	// The library's view says the same, in position space.
	cps, err := listener.Checkpoints(ctx, store)
	require.NoError(t, err)
	require.Len(t, cps, 1)
	require.Zero(t, cps[0].Lag)
	require.Positive(t, cps[0].HeldBack)

	out := mustRun(t, dsn, "stats")
	t.Log(out)
	require.Contains(t, out, "held back")
	require.Contains(t, out, "oldest running transaction")
	require.NoError(t, holder.Rollback())
}
