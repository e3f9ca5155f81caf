package bench

import (
	"context"
	"database/sql"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
)

// serverCPU reads the CPU time of the PostgreSQL backends connected to
// the benchmark's database, per backend pid, from /proc: it works only
// when the server runs on this machine (nil otherwise, and on other
// dialects). Backends that exit between two readings are not counted, so
// a mode is read while its pool is still open.
func serverCPU(ctx context.Context, d eventfold.Dialect, db *sql.DB) map[int]time.Duration {
	if d != eventfold.Postgres {
		return nil
	}
	rows, err := db.QueryContext(ctx, `select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) != nil {
			return nil
		}
		t, ok := procCPU(pid)
		if !ok {
			return nil // not this machine's server (or not Linux)
		}
		out[pid] = t
	}
	if rows.Err() != nil {
		return nil
	}
	return out
}

// serverCPUSince is the backends' CPU time from before to after (a
// backend absent from before was started in between: all of its time).
func serverCPUSince(before, after map[int]time.Duration) time.Duration {
	if before == nil || after == nil {
		return 0
	}
	var sum time.Duration
	for pid, t := range after {
		sum += t - before[pid]
	}
	return sum
}

// statFields returns the fields of /proc/<pid>/stat from field 3 (state)
// on, so that field n of proc(5) is at index n-3 (nil if unreadable).
func statFields(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may hold spaces
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// procCPU is a process's user + system CPU time from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	f := statFields(pid)
	// utime is field 14, stime 15.
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond, true
}
