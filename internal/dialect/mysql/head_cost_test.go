package mysql_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestHeadQueryCost compares the statement a poller's Head runs on a log
// without holes (one statement: no gate, no page read) before 00019 (the
// highest position) and since (the highest position and the floor; since
// the anchored mark also the anchors of the head's event and the mark's),
// interleaved, one client, on a log of 20,000 events: wall time per
// statement as the client sees it and the server's CPU per statement
// (mariadbd's utime+stime from /proc, which other sessions on the server
// also add to: compare the lowest rounds). Runs with
// EVENTFOLD_MYSQL_MEASURE=1 and EVENTFOLD_MYSQL_SERVER_PID (the server's
// pid, for the CPU).
func TestHeadQueryCost(t *testing.T) {
	if os.Getenv("EVENTFOLD_MYSQL_MEASURE") != "1" {
		t.Skip("set EVENTFOLD_MYSQL_MEASURE=1 to measure")
	}
	ctx := context.Background()
	db := latestDB(t)
	db.SetMaxOpenConns(1)
	ops := mysqlops.New(db)
	for i := 0; i < 200; i++ {
		evs := make([]eventfold.EventData, 100)
		for j := range evs {
			evs[j] = newEvent("E")
		}
		_, err := ops.Append(ctx, fmt.Sprintf("hc-%d", i), eventfold.NoStream, evs)
		require.NoError(t, err)
	}
	cpu := func() time.Duration {
		pid := os.Getenv("EVENTFOLD_MYSQL_SERVER_PID")
		if pid == "" {
			return 0
		}
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		require.NoError(t, err)
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		k, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(u+k) * 10 * time.Millisecond // USER_HZ 100
	}
	const old = `SELECT CAST(COALESCE(MAX(global_position), 0) AS SIGNED) AS head FROM eventfold_events`
	// 00019's statement (the head and the floor), before the mark's anchors.
	const floor = `SELECT CAST(COALESCE((SELECT MAX(global_position) FROM eventfold_events), 0) AS SIGNED),
    CAST(COALESCE((SELECT last_position FROM eventfold_position WHERE id = 1), 0) AS SIGNED)`
	queries := map[string]string{"old": old, "floor": floor, "new": mysqlops.HeadAndFloorQueryForTest}
	// What each statement makes the server do, counted exactly: the
	// session's handler reads (index lookups and row reads) for one run.
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	handler := func() map[string]int64 {
		rows, err := conn.QueryContext(ctx, `SHOW SESSION STATUS LIKE 'Handler_read%'`)
		require.NoError(t, err)
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var k string
			var v int64
			require.NoError(t, rows.Scan(&k, &v))
			m[k] = v
		}
		return m
	}
	for _, name := range []string{"none", "old", "floor", "new"} {
		before := handler()
		if name != "none" { // none: what the SHOW alone counts
			rows, err := conn.QueryContext(ctx, queries[name])
			require.NoError(t, err)
			for rows.Next() {
			}
			require.NoError(t, rows.Close())
		}
		after := handler()
		var diff []string
		for k, v := range after {
			if d := v - before[k]; d != 0 {
				diff = append(diff, fmt.Sprintf("%s+%d", k, d))
			}
		}
		sort.Strings(diff)
		t.Logf("%s: handler reads of one statement (the SHOW itself included): %v", name, diff)
	}
	require.NoError(t, conn.Close())

	const n = 2000
	res := map[string][][2]float64{}
	for round := 0; round < 6; round++ {
		for _, name := range []string{"old", "floor", "new"} {
			c0, t0 := cpu(), time.Now()
			for i := 0; i < n; i++ {
				rows, err := db.QueryContext(ctx, queries[name])
				require.NoError(t, err)
				for rows.Next() {
				}
				require.NoError(t, rows.Close())
			}
			wall := float64(time.Since(t0).Microseconds()) / n
			c := float64((cpu() - c0).Microseconds()) / n
			res[name] = append(res[name], [2]float64{wall, c})
			t.Logf("round %d %s: %.1f µs wall, %.1f µs server CPU per statement", round, name, wall, c)
		}
	}
	for _, name := range []string{"old", "floor", "new"} {
		r := res[name]
		sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
		t.Logf("%s: median wall %.1f µs (min %.1f)", name, r[len(r)/2][0], r[0][0])
		sort.Slice(r, func(i, j int) bool { return r[i][1] < r[j][1] })
		t.Logf("%s: median server CPU %.1f µs (min %.1f)", name, r[len(r)/2][1], r[0][1])
	}
}
