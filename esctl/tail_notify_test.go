package esctl

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestTailWakesOnNotify: on PostgreSQL, esctl tail polling only once an hour
// still prints an event esctl append just wrote, woken by its NOTIFY.
func TestTailWakesOnNotify(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	done := make(chan result, 1)
	go func() { done <- run(t, Options{}, dsn, "tail", "--from", "0", "--poll", "1h", "--limit", "1") }()
	// Give the tail time to catch up (the log is empty) and wait: polling
	// once an hour, only the append's NOTIFY can wake it. On a slow machine
	// the append may come first; --from 0 then still prints it (no flake).
	time.Sleep(300 * time.Millisecond)
	mustRun(t, dsn, "append", "--stream", "woken-1", "--type", "Woke", "--data", `{"n":1}`)
	select {
	case r := <-done:
		require.Equal(t, 0, r.code, "tail: stdout: %s\nstderr: %s", r.stdout, r.stderr)
		require.Contains(t, r.stdout, `"stream_id":"woken-1"`, "tail: stderr: %s", r.stderr)
	case <-time.After(30 * time.Second):
		require.FailNow(t, "tail did not wake within 30s of the append (it polls once an hour)")
	}
}

// TestTailWakesOnNotifyWithPoolCap: a DSN with sqldriver's max_open_conns
// reached PostgreSQL on tail's LISTEN connection, which the server refused
// ('unrecognized configuration parameter "max_open_conns"') on every
// reconnect: tail warned forever and, polling once an hour, never woke.
func TestTailWakesOnNotifyWithPoolCap(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	capped := dsn + sep + "max_open_conns=4"
	done := make(chan result, 1)
	go func() { done <- run(t, Options{}, capped, "tail", "--from", "0", "--poll", "1h", "--limit", "1") }()
	time.Sleep(300 * time.Millisecond)
	mustRun(t, capped, "append", "--stream", "woken-1", "--type", "Woke", "--data", `{"n":1}`)
	select {
	case r := <-done:
		require.Equal(t, 0, r.code, "tail: stdout: %s\nstderr: %s", r.stdout, r.stderr)
		require.Contains(t, r.stdout, `"stream_id":"woken-1"`, "tail: stderr: %s", r.stderr)
		require.NotContains(t, r.stderr, "max_open_conns")
	case <-time.After(30 * time.Second):
		require.FailNow(t, "tail did not wake within 30s of the append (it polls once an hour)")
	}
}
