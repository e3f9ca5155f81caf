package otelfold_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/otelfold"
)

// TestLagUnitFollowsPositions: on MariaDB a rolled-back append leaves a
// hole in the positions (AUTO_INCREMENT since migration 00015), so the lag
// gauge is a distance in position space there and must say so; it used to
// claim "events" (3 positions behind, 2 events). On SQLite, whose positions
// are dense, it is an event count.
func TestLagUnitFollowsPositions(t *testing.T) {
	for d, unit := range map[eventfold.Dialect]string{eventfold.MySQL: "positions", eventfold.SQLite: "events"} {
		t.Run(string(d), func(t *testing.T) {
			b := setup(t, d, nil)
			ctx := b.ctx
			ev := eventfold.EventData{Type: "T", Data: []byte(`{}`)}
			first, err := b.store.Append(ctx, "lag-1", eventfold.Any, ev)
			require.NoError(t, err)
			tx, err := b.store.Driver().DB().BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = b.store.AppendTx(ctx, tx, "lag-1", eventfold.Any, ev)
			require.NoError(t, err)
			require.NoError(t, tx.Rollback())
			last, err := b.store.Append(ctx, "lag-1", eventfold.Any, ev)
			require.NoError(t, err)
			require.NoError(t, listener.SetCheckpoint(ctx, b.store, "counter", 0))

			reg, err := otelfold.ObserveLag(b.inst, b.store)
			require.NoError(t, err)
			defer reg.Unregister()
			sub := attribute.String("messaging.consumer.group.name", "counter")
			require.Equal(t, last[0].GlobalPosition, b.sum(t, "eventfold.subscription.lag", sub, attribute.String("eventfold.lag.unit", unit)))
			if unit == "events" {
				require.EqualValues(t, 1, last[0].GlobalPosition-first[0].GlobalPosition, "dense positions")
			} else {
				require.EqualValues(t, 2, last[0].GlobalPosition-first[0].GlobalPosition, "the rolled-back append should have left a hole")
			}
		})
	}
}

// TestHeldBackGauge: on PostgreSQL a running transaction holds the read
// horizon back; the subscription's lag is 0 then (nothing readable is
// unread), and only eventfold.subscription.held_back shows it is behind.
func TestHeldBackGauge(t *testing.T) {
	b := setup(t, eventfold.Postgres, nil)
	ctx := b.ctx
	ev := eventfold.EventData{Type: "T", Data: []byte(`{}`)}
	first, err := b.store.Append(ctx, "held-1", eventfold.Any, ev)
	require.NoError(t, err)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err = b.store.WaitHead(wctx, first[0].GlobalPosition)
	require.NoError(t, err)
	require.NoError(t, listener.SetCheckpoint(ctx, b.store, "projector", first[0].GlobalPosition))

	testdb.HoldHorizon(t) // until the test ends
	_, err = b.store.Append(ctx, "held-1", eventfold.Any, ev)
	require.NoError(t, err)

	reg, err := otelfold.ObserveLag(b.inst, b.store)
	require.NoError(t, err)
	defer reg.Unregister()
	sub := attribute.String("messaging.consumer.group.name", "projector")
	require.Greater(t, b.sum(t, "eventfold.subscription.held_back", sub), int64(0), "held back")
}
