package natsrelay_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

// TestAttackRelayHugeInFlight: Options.InFlight caps the batches awaiting
// acknowledgements; a huge cap (math.MaxInt, "no limit") is a valid
// choice, as 0 and negative values are (the default). New multiplied it by
// the batch size for the client's pending-ack limit, which overflowed to 0
// (math.MaxInt+1 wraps, times an even batch size), and New failed with
// "jetstream: invalid jetstream option: max ack pending should be >= 1",
// an option the caller never set. Failed on the old code at New. Now the
// limit saturates and the relay delivers every event once, in order.
func TestAttackRelayHugeInFlight(t *testing.T) {
	for _, inFlight := range []int{math.MaxInt, math.MaxInt / 2, -1, 0} {
		store := testdb.SQLStore(t, eventfold.SQLite)
		require.NoError(t, store.Migrate(context.Background()))
		nc := connect(t, sharedURL(t))
		stream, prefix := uniqueStream(t, nc)
		createStream(t, nc, stream, prefix, jetstream.MemoryStorage)
		appendN(t, store, 7)
		_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, InFlight: inFlight,
			Listener: listener.Options{BatchSize: 2}})
		waitStream(t, nc, stream, 7, 15*time.Second)
		require.NoError(t, stop(), "InFlight %d", inFlight)
		checkExactlyOnce(t, readLog(t, store), streamEvents(t, nc, stream))
	}
}
