package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestAppendAttribution measures what one dispatch-shaped transaction
// (START TRANSACTION, an append, the bench's read-model upsert, COMMIT) costs
// the server, variant by variant, so that the append procedure can be taken
// apart piece by piece (bench/mysql-attribution/README.md). It runs only
// when EVENTFOLD_MYSQL_ATTRIBUTION names the variants (comma-separated):
//
//   - raw: the INSERT of esctl bench --raw (bench_raw_events);
//   - ev_direct: one plain INSERT INTO eventfold_events (no procedure);
//   - ev_nochk, ev_noid, ev_nocheck: the same INSERT into copies of
//     eventfold_events made by EVENTFOLD_MYSQL_ATTRIBUTION_PROCS (without the
//     named JSON checks that repeat the JSON columns' own, without the event
//     id index, without any check);
//   - empty_raw: CALL of an empty procedure with eventfold_append_one's
//     argument types, then raw's INSERT;
//   - one: CALL eventfold_append_one(stream, -1, ...), as dispatch sends it;
//   - <name>_one: CALL <name>_one(stream, -1, event id, type, data, metadata),
//     eventfold_append_one's arguments, of a procedure created from
//     EVENTFOLD_MYSQL_ATTRIBUTION_PROCS;
//   - any other name: CALL <name>(stream, event id, type, data, metadata) of
//     a procedure created from EVENTFOLD_MYSQL_ATTRIBUTION_PROCS (a file of
//     statements separated by lines holding only ";;").
//
// Each variant runs EVENTFOLD_MYSQL_ATTRIBUTION_N transactions (default 40)
// per round, variants interleaved, EVENTFOLD_MYSQL_ATTRIBUTION_ROUNDS rounds
// (default 3), every transaction on a fresh stream and account. The cost is
// the instructions of the connection's server thread counted by callgrind
// when EVENTFOLD_MYSQL_ATTRIBUTION_CALLGRIND names the pid of a private
// mariadbd run under valgrind --tool=callgrind --separate-threads=yes (its
// dumps in EVENTFOLD_MYSQL_ATTRIBUTION_CALLGRIND_DIR): deterministic within
// a few per cent whatever the machine's load. Otherwise it is the thread's
// CPU time from /proc/<tid>/schedstat (the server must run on this machine),
// which a loaded machine scatters by +-30 %. Handler_* and Questions deltas
// per transaction are logged for the first round.
func TestAppendAttribution(t *testing.T) {
	variantList := os.Getenv("EVENTFOLD_MYSQL_ATTRIBUTION")
	if variantList == "" {
		t.Skip("set EVENTFOLD_MYSQL_ATTRIBUTION to the variants to measure (see bench/mysql-attribution)")
	}
	db := migratedDB(t)
	ctx := context.Background()
	stmts := []string{
		`CREATE TABLE bench_accounts (id VARCHAR(200) PRIMARY KEY, balance BIGINT NOT NULL, version INT NOT NULL) ENGINE=InnoDB`,
		`CREATE TABLE bench_raw_events (
			global_position BIGINT AUTO_INCREMENT PRIMARY KEY, stream_id VARCHAR(200) NOT NULL, version INT NOT NULL,
			type VARCHAR(200) NOT NULL, data JSON NOT NULL, metadata JSON NOT NULL DEFAULT ('{}'),
			recorded_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), UNIQUE (stream_id, version)) ENGINE=InnoDB`,
		`CREATE PROCEDURE ef_attr_empty(IN p_stream_id VARBINARY(800), IN p_event_id VARBINARY(36), IN p_event_type VARBINARY(800),
			IN p_data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, IN p_metadata LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin) BEGIN END`,
	}
	if f := os.Getenv("EVENTFOLD_MYSQL_ATTRIBUTION_PROCS"); f != "" {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, s := range strings.Split(string(b), "\n;;\n") {
			if strings.TrimSpace(s) != "" {
				stmts = append(stmts, s)
			}
		}
	}
	for _, s := range stmts {
		_, err := db.ExecContext(ctx, s)
		require.NoError(t, err, s)
	}
	c, err := db.Conn(ctx)
	require.NoError(t, err)
	defer c.Close()
	var tid int
	require.NoError(t, c.QueryRowContext(ctx, "SELECT tid FROM information_schema.processlist WHERE id = CONNECTION_ID()").Scan(&tid))
	_, err = c.ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED") // as sqldriver.Open's sessions
	require.NoError(t, err)

	const (
		rawInsert = `INSERT INTO bench_raw_events (stream_id, version, type, data) VALUES (?, ?, 'Deposited', ?)`
		upsert    = `INSERT INTO bench_accounts (id, balance, version) VALUES (?, ?, 1) ON DUPLICATE KEY UPDATE balance = balance + VALUES(balance), version = version + 1`
	)
	query := func(tx *sql.Tx, q string, args ...any) error { // read the CALL's result and trailing status
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		return rows.Close()
	}
	seq := 0
	run := func(v string) {
		seq++
		acct := fmt.Sprintf("acct-%s-%d", v, seq)
		id := uuid.Must(uuid.NewV7()).String()
		data := fmt.Sprintf(`{"amount": %d}`, seq%1000)
		tx, err := c.BeginTx(ctx, nil)
		require.NoError(t, err)
		switch v {
		case "raw":
			_, err = tx.ExecContext(ctx, rawInsert, acct, 1, data)
		case "ev_direct":
			_, err = tx.ExecContext(ctx, `INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
				VALUES (?, 1, ?, 'Deposited', ?, '{}', UTC_TIMESTAMP(6))`, acct, id, data)
		case "ev_nochk", "ev_noid", "ev_nocheck": // copies of eventfold_events (see bench/mysql-attribution)
			_, err = tx.ExecContext(ctx, `INSERT INTO `+v+` (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
				VALUES (?, 1, ?, 'Deposited', ?, '{}', UTC_TIMESTAMP(6))`, acct, id, data)
		case "empty_raw":
			if _, err = tx.ExecContext(ctx, "CALL ef_attr_empty(?, ?, 'Deposited', ?, '{}')", acct, id, data); err == nil {
				_, err = tx.ExecContext(ctx, rawInsert, acct, 1, data)
			}
		case "one":
			err = query(tx, "CALL eventfold_append_one(?, -1, ?, 'Deposited', ?, '{}')", acct, id, data)
		default:
			if strings.HasSuffix(v, "_one") { // eventfold_append_one's arguments
				err = query(tx, "CALL "+v+"(?, -1, ?, 'Deposited', ?, '{}')", acct, id, data)
				break
			}
			err = query(tx, "CALL "+v+"(?, ?, 'Deposited', ?, '{}')", acct, id, data)
		}
		require.NoError(t, err, v)
		_, err = tx.ExecContext(ctx, upsert, acct, seq%1000)
		require.NoError(t, err)
		require.NoError(t, tx.Commit())
	}

	variants := strings.Split(variantList, ",")
	n := envInt("EVENTFOLD_MYSQL_ATTRIBUTION_N", 40)
	rounds := envInt("EVENTFOLD_MYSQL_ATTRIBUTION_ROUNDS", 3)
	cg := os.Getenv("EVENTFOLD_MYSQL_ATTRIBUTION_CALLGRIND")
	unit := "CPU ns"
	if cg != "" {
		unit = "instructions"
	}
	for _, v := range variants { // warm up: caches, the procedures' parsed bodies
		for range 20 {
			run(v)
		}
	}
	cost := map[string][]int64{}
	for round := range rounds {
		for _, v := range variants {
			h0 := sessionStatus(t, c)
			var c0 int64
			if cg != "" {
				callgrindDump(t, cg) // zeroes the counters
			} else {
				c0 = threadNS(t, tid)
			}
			for range n {
				run(v)
			}
			var used int64
			if cg != "" {
				used = callgrindDump(t, cg)
			} else {
				used = threadNS(t, tid) - c0
			}
			cost[v] = append(cost[v], used/int64(n))
			if round == 0 {
				h1 := sessionStatus(t, c)
				var hs []string
				for k, x := range h1 {
					if d := x - h0[k]; d > 0 {
						hs = append(hs, fmt.Sprintf("%s=%.2f", strings.TrimPrefix(k, "Handler_"), float64(d)/float64(n)))
					}
				}
				sort.Strings(hs)
				t.Logf("%-14s per transaction: %s", v, strings.Join(hs, " "))
			}
		}
	}
	for _, v := range variants {
		xs := cost[v]
		sort.Slice(xs, func(i, j int) bool { return xs[i] < xs[j] })
		t.Logf("%-14s %s per transaction: median %d, min %d, max %d (%d rounds of %d)", v, unit, xs[len(xs)/2], xs[0], xs[len(xs)-1], rounds, n)
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// threadNS is a server thread's run time in ns (/proc/<tid>/schedstat).
func threadNS(t *testing.T, tid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/schedstat")
	require.NoError(t, err, "the server must run on this machine")
	n, err := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	require.NoError(t, err)
	return n
}

// sessionStatus is the session's Handler_* counters and Questions.
func sessionStatus(t *testing.T, c *sql.Conn) map[string]int64 {
	t.Helper()
	rows, err := c.QueryContext(context.Background(), "SHOW SESSION STATUS WHERE Variable_name LIKE 'Handler%' OR Variable_name IN ('Questions', 'Com_savepoint', 'Com_release_savepoint')")
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var v int64
		require.NoError(t, rows.Scan(&k, &v))
		out[k] = v
	}
	require.NoError(t, rows.Err())
	return out
}

// callgrindDump makes the callgrind-run server pid dump its counters (which
// zeroes them) and returns the instructions of its busiest thread since the
// last dump: the connection's thread, which runs every statement.
func callgrindDump(t *testing.T, pid string) int64 {
	t.Helper()
	// callgrind_control must run as the server's user (vgdb's pipes are per user).
	out, err := exec.Command("runuser", "-u", "mysql", "--", "callgrind_control", "-d", pid).CombinedOutput()
	require.NoError(t, err, string(out))
	dir := os.Getenv("EVENTFOLD_MYSQL_ATTRIBUTION_CALLGRIND_DIR")
	prefix := filepath.Join(dir, "callgrind.out."+pid+".")
	files, _ := filepath.Glob(prefix + "*")
	last := 0
	for _, f := range files { // dumps are callgrind.out.<pid>.<n>-<thread>
		k, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(f, prefix), "-", 2)[0])
		last = max(last, k)
	}
	require.NotZero(t, last, "no callgrind dump under %s", prefix)
	threads, _ := filepath.Glob(fmt.Sprintf("%s%d-*", prefix, last))
	var busiest int64
	for _, f := range threads {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "summary:") || strings.HasPrefix(l, "totals:") {
				k, err := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
				require.NoError(t, err)
				busiest = max(busiest, k)
				break
			}
		}
		require.NoError(t, os.Remove(f))
	}
	return busiest
}
