package listener_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// serverDialects are the dialects the tests run on: SQLite always, the
// servers when testdb finds them (EVENTFOLD_REQUIRE turns a skip into a
// failure).
func forEachDialect(t *testing.T, fn func(t *testing.T, store *eventfold.Store[*sql.Tx])) {
	for _, d := range testdb.Dialects() {
		t.Run(string(d), func(t *testing.T) {
			fn(t, testdb.SQLStore(t, d))
		})
	}
}

// pgxStore returns a Store[pgx.Tx] on a fresh PostgreSQL database, and its DSN.
func pgxStore(t *testing.T) (*eventfold.Store[pgx.Tx], string) { return pgxStoreB(t) }

func pgxStoreB(t testing.TB) (*eventfold.Store[pgx.Tx], string) {
	t.Helper()
	dsn := testdb.DSN(t, eventfold.Postgres)
	drv, err := pgxdriver.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open pgx: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	return eventfold.New(drv, nil), dsn
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func data(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// readLog returns the whole committed log. It first waits until readers may
// see every committed event: on PostgreSQL any writing transaction in the
// cluster (another test package's) holds the read horizon back for a while.
func readLog[TTx any](t *testing.T, store *eventfold.Store[TTx]) []eventfold.Event {
	t.Helper()
	ctx := context.Background()
	last, err := store.LastPosition(ctx)
	if err != nil {
		t.Fatalf("last position: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if h, err := store.WaitHead(wctx, last); err != nil {
		t.Fatalf("the log is complete only up to %d after a minute, want %d: %v", h, last, err)
	}
	var out []eventfold.Event
	from := int64(0)
	for {
		evs, err := store.ReadAll(context.Background(), eventfold.ReadAllOptions{From: from, Limit: 1000})
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		if len(evs) == 0 {
			return out
		}
		out = append(out, evs...)
		from = evs[len(evs)-1].GlobalPosition + 1
	}
}

// checkExact fails unless got is exactly want (positions and ids, in order).
func checkExact(t *testing.T, what string, got, want []eventfold.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d events, want %d", what, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i].GlobalPosition != want[i].GlobalPosition || got[i].ID != want[i].ID {
			t.Errorf("%s: event %d is position %d (%s), want position %d (%s)", what, i, got[i].GlobalPosition, got[i].ID, want[i].GlobalPosition, want[i].ID)
			return
		}
	}
}

// checkReplayed fails unless got is want with, at most, replays: got is a
// run of contiguous slices of want, each starting no later than right after
// where the previous one ended (a restart may repeat, never skip), ending
// with want's last event.
func checkReplayed(t *testing.T, what string, got, want []eventfold.Event) (replays int) {
	t.Helper()
	index := make(map[int64]int, len(want))
	for i, e := range want {
		index[e.GlobalPosition] = i
	}
	next := 0 // index in want of the next new event
	for k, e := range got {
		i, ok := index[e.GlobalPosition]
		if !ok || want[i].ID != e.ID {
			t.Errorf("%s: received event %d (position %d) is not in the log", what, k, e.GlobalPosition)
			return replays
		}
		switch {
		case i == next:
			next++
		case i < next:
			replays++
		default:
			t.Errorf("%s: gap: received position %d (log index %d) before log index %d (position %d)", what, e.GlobalPosition, i, next, want[next].GlobalPosition)
			return replays
		}
	}
	if next != len(want) {
		t.Errorf("%s: received %d distinct events, want %d", what, next, len(want))
	}
	return replays
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// placeholders returns n bind parameters in d's syntax.
func placeholders(d eventfold.Dialect, n int) []string {
	out := make([]string, n)
	for i := range out {
		switch d {
		case eventfold.Postgres:
			out[i] = fmt.Sprintf("$%d", i+1)
		case eventfold.SQLServer:
			out[i] = fmt.Sprintf("@p%d", i+1)
		default:
			out[i] = "?"
		}
	}
	return out
}
