package pgxdriver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// TestMain drops the shared database when the tests are done.
func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }

// store returns a Store over pgx on the package's shared, migrated
// database (testdb.SharedDSN: skipped, or failed under EVENTFOLD_REQUIRE,
// without PostgreSQL). Tests keep apart by their own stream ids; a test
// that changes the schema takes a database of its own (testdb.EmptyDSN).
func store(t *testing.T) *eventfold.Store[pgx.Tx] {
	t.Helper()
	drv, err := pgxdriver.Open(context.Background(), testdb.SharedDSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return eventfold.New(drv, nil)
}

// streamID returns a stream id no other test (or run) uses.
func streamID(t *testing.T, suffix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", t.Name(), suffix, hex.EncodeToString(b))
}

func ev(typ, data string) eventfold.EventData {
	return eventfold.EventData{Type: typ, Data: []byte(data)}
}

// readAllUntil reads from position from until done accepts the events of
// the given streams, or fails the test after a while. Other sessions on the
// cluster (other test packages) may hold the snapshot horizon back briefly.
func readAllUntil(t *testing.T, s *eventfold.Store[pgx.Tx], from int64, streams []string, done func([]eventfold.Event) bool) []eventfold.Event {
	t.Helper()
	want := map[string]bool{}
	for _, id := range streams {
		want[id] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, err := s.ReadAll(context.Background(), eventfold.ReadAllOptions{From: from, Limit: 10000})
		require.NoError(t, err)
		var mine []eventfold.Event
		for _, e := range all {
			if want[e.StreamID] {
				mine = append(mine, e)
			}
		}
		if done(mine) {
			return mine
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "ReadAll: condition not met", "from %d, within the deadline; got %d events of %v", from, len(mine), streams)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sqlState returns the SQLSTATE of err, if it is a PostgreSQL error.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
