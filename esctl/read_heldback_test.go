package esctl

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestReadSaysEventsAreHeldBackPostgres: on PostgreSQL a transaction with
// an xid left open anywhere in the cluster holds the read horizon back, so
// events appended after it began are committed but not readable. `esctl
// read --all` printed nothing more and exited 0, and `tail` waited in
// silence: an operator who had just appended saw an empty log. Both now
// say on stderr how many committed events are held back and what holds
// them; stdout, which scripts parse, is unchanged.
func TestReadSaysEventsAreHeldBackPostgres(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	ctx := context.Background()
	first := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "held-1", "--type", "T", "--data", `{}`))
	waitHead(t, dsn, first[0].GlobalPosition)
	before := run(t, Options{}, dsn, "read", "--all")
	require.Equal(t, 0, before.code, before.stderr)
	require.Empty(t, before.stderr, "nothing held back: nothing said")

	// A transaction with an xid, left open: it holds the horizon.
	holder := testdb.HoldHorizon(t)
	more, err := openStore(t, dsn).Append(ctx, "held-1", eventfold.Any,
		eventfold.EventData{Type: "T", Data: []byte(`{}`)}, eventfold.EventData{Type: "T", Data: []byte(`{}`)})
	require.NoError(t, err)

	r := run(t, Options{}, dsn, "read", "--all")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, before.stdout, r.stdout, "stdout is what was readable, nothing else")
	t.Log(r.stderr)
	require.Contains(t, r.stderr, "committed events above the head")
	require.Contains(t, r.stderr, "oldest running transaction: pid ")
	// Other tests share the cluster: the oldest holder may be theirs, and
	// more events than ours may be held back.
	m := regexp.MustCompile(`(\d+) committed events above the head`).FindStringSubmatch(r.stderr)
	require.NotNil(t, m, r.stderr)
	n, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.GreaterOrEqual(t, n, 2, r.stderr)
	// A read that stops at --limit before the head says nothing.
	r = run(t, Options{}, dsn, "read", "--all", "--limit", "1")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, before.stdout, r.stdout)
	require.Empty(t, r.stderr)

	// tail says so when it reaches the head, and prints the events once
	// the holder ends.
	tctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(tctx, []string{"--dsn", dsn, "tail", "--from", strconv.FormatInt(first[0].GlobalPosition+1, 10), "--limit", "2", "--poll", "50ms"},
			&out, &errb, Options{Getenv: func(string) string { return "" }})
	}()
	for !strings.Contains(errb.String(), "committed events above the head") {
		select {
		case code := <-done:
			t.Fatalf("tail ended (%d) without saying the events are held back; stderr:\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	require.Empty(t, out.String(), "nothing readable yet")
	require.Contains(t, errb.String(), "oldest running transaction: pid ")
	require.NoError(t, holder.Rollback())
	require.Equal(t, 0, <-done, errb.String())
	got := decodeEvents(t, out.String())
	require.Len(t, got, 2)
	require.Equal(t, more[0].ID, got[0].ID)
	require.Equal(t, more[1].ID, got[1].ID)
	t.Log(errb.String())
}
