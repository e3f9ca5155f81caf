package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// storeCase is one conformance test, written once for every driver.
type storeCase[TTx any] struct {
	name string
	run  func(t *testing.T, s *eventfold.Store[TTx])
}

// TestStoreConformance runs the store suite on every dialect through
// database/sql.
func TestStoreConformance(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		runStoreSuite(t, func(t *testing.T) *eventfold.Store[*sql.Tx] { return testdb.SQLStore(t, d) })
	})
	// PostgreSQL again, through pgx natively (transaction type pgx.Tx).
	t.Run("postgres-pgx", func(t *testing.T) {
		runStoreSuite(t, func(t *testing.T) *eventfold.Store[pgx.Tx] { return testdb.PgxStore(t) })
	})
}

func runStoreSuite[TTx any](t *testing.T, open func(t *testing.T) *eventfold.Store[TTx]) {
	// Probe once so an unavailable database skips (or fails) the whole group.
	s := open(t)
	for _, c := range storeCases[TTx]() {
		t.Run(c.name, func(t *testing.T) { c.run(t, s) })
	}
	t.Run("fresh-log", func(t *testing.T) {
		for _, c := range freshLogCases[TTx]() {
			t.Run(c.name, func(t *testing.T) { c.run(t, open(t)) })
		}
	})
}

var streamSeq struct {
	sync.Mutex
	n int
}

// newStream returns a stream id no other test uses.
func newStream(t *testing.T) string {
	streamSeq.Lock()
	defer streamSeq.Unlock()
	streamSeq.n++
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(t.Name(), "/", "."), streamSeq.n)
}

func ev(typ, data string) eventfold.EventData {
	return eventfold.EventData{Type: typ, Data: json.RawMessage(data)}
}

func mustAppend[TTx any](t *testing.T, s *eventfold.Store[TTx], stream string, exp eventfold.ExpectedVersion, evs ...eventfold.EventData) []eventfold.Event {
	t.Helper()
	out, err := s.Append(context.Background(), stream, exp, evs...)
	require.NoError(t, err, "append to %s (expected %s)", stream, exp)
	return out
}

func jsonEqual(t *testing.T, want, got json.RawMessage) {
	t.Helper()
	require.JSONEq(t, string(want), string(got))
}

func wantWrongVersion(t *testing.T, err error, stream string, actual int64) {
	t.Helper()
	var wev *eventfold.WrongExpectedVersionError
	require.ErrorAs(t, err, &wev)
	require.ErrorIs(t, err, eventfold.ErrWrongExpectedVersion)
	require.Equal(t, stream, wev.StreamID)
	require.Equal(t, actual, wev.Actual)
}

func readStream[TTx any](t *testing.T, s *eventfold.Store[TTx], stream string, opt eventfold.ReadStreamOptions) []eventfold.Event {
	t.Helper()
	evs, err := s.ReadStream(context.Background(), stream, opt)
	require.NoError(t, err, "read stream %s", stream)
	return evs
}

func versions(evs []eventfold.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.StreamVersion
	}
	return out
}

func positions(evs []eventfold.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.GlobalPosition
	}
	return out
}

// readAllFrom reads the log from position from to the horizon, page by page.
func readAllFrom[TTx any](t *testing.T, s *eventfold.Store[TTx], from int64) []eventfold.Event {
	t.Helper()
	var out []eventfold.Event
	for {
		page, err := s.ReadAll(context.Background(), eventfold.ReadAllOptions{From: from, Limit: 500})
		require.NoError(t, err, "read all from %d", from)
		out = append(out, page...)
		if len(page) < 500 {
			return out
		}
		from = page[len(page)-1].GlobalPosition + 1
	}
}

// waitVisible waits until the log is complete up to pos. On PostgreSQL any
// writing transaction in the cluster (another test package's, say) holds
// the read horizon back for a while: lag, never loss, but a test that reads
// right after committing must wait for it.
func waitVisible[TTx any](t *testing.T, s *eventfold.Store[TTx], pos int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := s.WaitHead(ctx, pos)
	require.NoError(t, err, "the log is complete only up to %d after 30s, want %d", h, pos)
}
