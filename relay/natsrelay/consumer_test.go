package natsrelay_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/relay/natsrelay"
)

// TestCompetingConsumers: the relay publishes with PartitionedSubject(3);
// three consumers, one durable per partition, each in its own connection,
// receive every event exactly once, and each stream's events in global
// position order. One handler fails now and then: it is retried in place, so order
// still holds.
func TestCompetingConsumers(t *testing.T) {
	total := int64(envInt("NATSRELAY_TEST_CONSUMER_EVENTS", 3000))
	forEachDialect(t, func(t *testing.T, store *eventfold.Store[*sql.Tx], _ string) {
		url := sharedURL(t)
		nc := connect(t, url)
		stream, prefix := uniqueStream(t, nc)
		createStream(t, nc, stream, prefix, jetstream.FileStorage)
		_, stop := runRelay(t, store, nc, natsrelay.Options{Stream: stream, SubjectPrefix: prefix, Subject: natsrelay.PartitionedSubject(3)})

		var (
			mu      sync.Mutex
			count   = map[string]int{}
			version = map[string]int64{}
			lastPos = map[string]int64{}
			bad     []string
			byPart  [3]int
			failed  = map[string]bool{}
		)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for k := range 3 {
			cnc := connect(t, url)
			wg.Go(func() {
				err := natsrelay.Consume(ctx, cnc, natsrelay.ConsumerOptions{
					Stream: stream, Durable: "part" + string(rune('0'+k)), FilterSubjects: []string{natsrelay.PartitionFilter(prefix, k)},
					RetryMin: time.Millisecond, RetryMax: 10 * time.Millisecond,
				}, func(ctx context.Context, ev eventfold.Event) error {
					mu.Lock()
					defer mu.Unlock()
					if ev.GlobalPosition%97 == 0 && !failed[ev.ID] {
						failed[ev.ID] = true
						return context.DeadlineExceeded // a transient failure
					}
					count[ev.ID]++
					// Per-stream order is the log's order: global position.
					// (On PostgreSQL two transactions appending to one stream
					// at once can end up with versions in the other order
					// than their positions: a store matter, see the report.)
					if ev.GlobalPosition <= lastPos[ev.StreamID] {
						bad = append(bad, fmt.Sprintf("consumer %d, stream %s: version %d (position %d, delivery %d) after version %d (position %d)",
							k, ev.StreamID, ev.StreamVersion, ev.GlobalPosition, count[ev.ID], version[ev.StreamID], lastPos[ev.StreamID]))
					}
					version[ev.StreamID], lastPos[ev.StreamID] = ev.StreamVersion, ev.GlobalPosition
					if p := natsrelay.Partition(ev.StreamID, 3); p != k {
						t.Errorf("event of stream %s (partition %d) delivered to consumer %d", ev.StreamID, p, k)
					}
					byPart[k]++
					return nil
				})
				if err != nil {
					t.Errorf("consumer %d: %v", k, err)
				}
			})
		}
		writeLoad(t, store, total)
		log := readLog(t, store)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			n := len(count)
			mu.Unlock()
			if n >= len(log) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // room for a duplicate to show
		cancel()
		wg.Wait()
		require.NoError(t, stop())
		checkExactlyOnce(t, log, streamEvents(t, nc, stream)) // the relay's part
		mu.Lock()
		defer mu.Unlock()
		require.Empty(t, bad, "per-stream order broken")
		require.Len(t, count, len(log))
		for _, ev := range log {
			require.Equal(t, 1, count[ev.ID], "event %s at %d", ev.ID, ev.GlobalPosition)
		}
		for k, n := range byPart {
			require.Positive(t, n, "partition %d got nothing", k)
		}
		t.Logf("%d events; per partition %v", len(log), byPart)
	})
}

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"account": "account", "": "%", "a.b": "a%2Eb", "a b": "a%20b", "*": "%2A", ">": "%3E", "50%": "50%25",
		"tab\there": "tab%09here", "straße": "straße", "\xff": "%FF", "\u200b": "%E2%80%8B", "\ufffd": "%EF%BF%BD",
	} {
		got := natsrelay.Token(in)
		require.Equal(t, want, got, "%q", in)
		require.NoError(t, natsrelay.ValidateSubject("p", "p."+got), "%q", in)
	}
	require.Equal(t, "acct", natsrelay.Category("acct-1-2"))
	require.Equal(t, "solo", natsrelay.Category("solo"))
	s, err := natsrelay.DefaultSubject("ef", eventfold.Event{StreamID: "my.acct-1", Type: "Opened"})
	require.NoError(t, err)
	require.Equal(t, "ef.my%2Eacct.Opened", s)
	for _, bad := range []string{"p", "p.", "p..x", "p.a b", "p.*", "p.a.>", "q.x", "p.x\x00"} {
		require.ErrorIs(t, natsrelay.ValidateSubject("p", bad), eventfold.ErrInvalidInput, "%q", bad)
	}
}

func TestConsumeRefusesBadOptions(t *testing.T) {
	nc := connect(t, sharedURL(t))
	h := func(context.Context, eventfold.Event) error { return nil }
	for _, o := range []natsrelay.ConsumerOptions{{}, {Stream: "S"}, {Stream: "S", Durable: "a.b"}, {Stream: "a b", Durable: "d"}} {
		require.ErrorIs(t, natsrelay.Consume(context.Background(), nc, o, h), eventfold.ErrInvalidInput, "%+v", o)
	}
	require.ErrorIs(t, natsrelay.Consume(context.Background(), nc, natsrelay.ConsumerOptions{Stream: "S", Durable: "d"}, nil), eventfold.ErrInvalidInput)
}
