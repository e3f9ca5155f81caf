package esctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

type result struct {
	code           int
	stdout, stderr string
}

// run runs esctl in process against dsn.
func run(t *testing.T, opts Options, dsn string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	if opts.Getenv == nil {
		opts.Getenv = func(string) string { return "" }
	}
	full := args
	if dsn != "" {
		full = append([]string{"--dsn", dsn}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := Main(ctx, full, &out, &errb, opts)
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, dsn string, args ...string) string {
	t.Helper()
	r := run(t, Options{}, dsn, args...)
	require.Equal(t, 0, r.code, "esctl %s:\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	return r.stdout
}

func forDialects(t *testing.T, fn func(t *testing.T, dsn string)) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		fn(t, testdb.DSN(t, d))
	})
}

func decodeEvents(t *testing.T, s string) []eventfold.Event {
	t.Helper()
	var evs []eventfold.Event
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var e eventfold.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e), "not an event line: %q", sc.Text())
		evs = append(evs, e)
	}
	return evs
}

func TestAppendReadRoundTrip(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		out := mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Opened",
			"--data", `{"owner":"ada","tags":["<b>"]}`, "--metadata", `{"correlation_id":"c1"}`, "--expected-version", "no-stream")
		evs := decodeEvents(t, out)
		require.Len(t, evs, 1, "append printed %q", out)
		require.EqualValues(t, 1, evs[0].StreamVersion, "append printed %q", out)
		require.Equal(t, "Opened", evs[0].Type, "append printed %q", out)
		// Exactly the contract's fields, nothing more.
		var fields map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(out), &fields))
		want := []string{"global_position", "stream_id", "stream_version", "id", "type", "data", "metadata", "recorded_at"}
		require.Len(t, fields, len(want), "fields %v, want %v", fields, want)
		for _, f := range want {
			require.Contains(t, fields, f, "field %q missing in %s", f, out)
		}
		mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Deposited", "--data", `{"amount":5}`, "--expected-version", "1")
		last := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "acct-2", "--type", "Opened", "--data", `null`))
		waitHead(t, dsn, last[0].GlobalPosition)

		stream := decodeEvents(t, mustRun(t, dsn, "read", "--stream", "acct-1"))
		require.Len(t, stream, 2, "read stream: %+v", stream)
		require.Equal(t, evs[0].ID, stream[0].ID, "read stream: %+v", stream)
		require.Equal(t, "Deposited", stream[1].Type, "read stream: %+v", stream)
		var data map[string]any
		require.NoError(t, json.Unmarshal(stream[0].Data, &data), "data %s", stream[0].Data)
		require.Equal(t, "ada", data["owner"], "data %s", stream[0].Data)
		back := decodeEvents(t, mustRun(t, dsn, "read", "--stream", "acct-1", "--backward", "--limit", "1"))
		require.Len(t, back, 1, "backward: %+v", back)
		require.EqualValues(t, 2, back[0].StreamVersion, "backward: %+v", back)
		all := decodeEvents(t, mustRun(t, dsn, "read", "--all"))
		require.Len(t, all, 3, "read all: %+v", all)
		require.Equal(t, "acct-2", all[2].StreamID, "read all: %+v", all)
		from := decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(all[1].GlobalPosition), "--limit", "1"))
		require.Len(t, from, 1, "read all --from: %+v", from)
		require.Equal(t, all[1].ID, from[0].ID, "read all --from: %+v", from)
		tail := decodeEvents(t, mustRun(t, dsn, "tail", "--from", "0", "--stream", "acct-", "--type", "Opened", "--limit", "2"))
		require.Len(t, tail, 2, "tail: %+v", tail)
		require.Equal(t, "acct-1", tail[0].StreamID, "tail: %+v", tail)
		require.Equal(t, "acct-2", tail[1].StreamID, "tail: %+v", tail)
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestConflictExits3(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		mustRun(t, dsn, "append", "--stream", "s", "--type", "T", "--data", `{}`)
		r := run(t, Options{}, dsn, "append", "--stream", "s", "--type", "T", "--data", `{}`, "--expected-version", "no-stream")
		require.Equal(t, ExitWrongVersion, r.code, "stderr %q", r.stderr)
		require.Contains(t, r.stderr, "wrong expected version")
		r = run(t, Options{}, dsn, "append", "--stream", "s", "--type", "T", "--data", `{}`, "--expected-version", "7")
		require.Equal(t, ExitWrongVersion, r.code, "stderr %q", r.stderr)
		require.Contains(t, r.stderr, "actual 1")
	})
}

func TestUsageErrorsExit2(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "never-opened.db")
	cases := []struct {
		args []string
		want string
	}{
		{nil, "Usage:"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"append", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"append", "--stream", "s", "--type", "T", "--data", `{"a":`}, "--data is not valid JSON"},
		{[]string{"append", "--stream", "s", "--type", "T", "--data", `{}`, "--metadata", `[1]`}, "--metadata must be a JSON object"},
		{[]string{"append", "--stream", "s", "--type", "T", "--data", `{}`, "--metadata", `{`}, "--metadata is not valid JSON"},
		{[]string{"append", "--stream", "s", "--type", "T", "--data", `{}`, "--expected-version", "soon"}, `--expected-version "soon"`},
		{[]string{"append", "--type", "T", "--data", `{}`}, "--stream is required"},
		{[]string{"read"}, "--stream S or --all is required"},
		{[]string{"read", "--all", "--limit", "x"}, `invalid value "x" for flag -limit`},
		{[]string{"migrate"}, "missing subcommand"},
		{[]string{"migrate", "sideways"}, `unknown subcommand "sideways"`},
		{[]string{"archive", "--to", "f"}, "--before and --to are required"},
		{[]string{"archive", "--before", "last tuesday", "--to", "f"}, "neither a global position nor a time"},
		{[]string{"subscriptions", "reset", "x", "--to", "-4"}, "want a global position"},
	}
	for _, c := range cases {
		r := run(t, Options{}, dsn, c.args...)
		require.Equal(t, ExitUsage, r.code, "esctl %q: stderr %q", c.args, r.stderr)
		require.Contains(t, r.stderr, c.want, "esctl %q", c.args)
	}
	_, err := os.Stat(strings.TrimPrefix(dsn, "sqlite://"))
	require.Error(t, err, "a usage error opened the database")
}

// TestBadFlagKeepsStdoutClean: stdout carries results only; a bad flag
// says so on stderr and must not dump the command's help onto stdout.
func TestBadFlagKeepsStdoutClean(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "never-opened.db")
	for _, args := range [][]string{{"append", "--nope"}, {"read", "--all", "--limit", "x"}, {"archive", "--batch", "many"}} {
		r := run(t, Options{}, dsn, args...)
		require.Equal(t, ExitUsage, r.code, "esctl %q: stderr %q", args, r.stderr)
		require.Empty(t, r.stdout, "esctl %q", args)
		require.NotContains(t, r.stderr, "Example:", "esctl %q: no help", args)
	}
	// --help after a bad flag in an earlier command of the same process
	// still prints exactly one usage.
	r := run(t, Options{}, "", "help", "read")
	require.Equal(t, 0, r.code, "help read: stdout %q", r.stdout)
	require.Equal(t, 1, strings.Count(r.stdout, "Usage: esctl read"), "help read: stdout %q", r.stdout)
}

// TestArchiveRefusesReusedFinishedFile: --to naming an archive that was
// completed earlier, with a --before beyond its range, must not report
// success while archiving nothing.
func TestArchiveRefusesReusedFinishedFile(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	evs := archiveFixture(t, dsn, 6)
	file := filepath.Join(t.TempDir(), "a.gz")
	mustRun(t, dsn, "archive", "--before", jsonInt(evs[2].GlobalPosition), "--to", file)
	// The same command again is a harmless, successful resume.
	mustRun(t, dsn, "archive", "--before", jsonInt(evs[2].GlobalPosition), "--to", file)
	r := run(t, Options{}, dsn, "archive", "--before", jsonInt(evs[4].GlobalPosition), "--to", file)
	require.Equal(t, ExitError, r.code, "stdout %q, stderr %q", r.stdout, r.stderr)
	require.Contains(t, r.stderr, "choose a new --to")
	require.Len(t, decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(evs[2].GlobalPosition))), 4,
		"events above the first archive (nothing more archived)")
	// After a restore, the old file re-archives its own range only, and
	// says that the rest was not archived.
	mustRun(t, dsn, "restore", "--from", file)
	r = run(t, Options{}, dsn, "archive", "--before", jsonInt(evs[4].GlobalPosition), "--to", file)
	require.Equal(t, ExitError, r.code, "after restore: stdout %q, stderr %q", r.stdout, r.stderr)
	require.Contains(t, r.stderr, "2 events deleted by this run", "after restore")
}

func TestHelpEverywhere(t *testing.T) {
	for _, c := range builtins() {
		r := run(t, Options{}, "", c.Name, "--help")
		require.Equal(t, 0, r.code, "%s --help: stdout %q", c.Name, r.stdout)
		require.Contains(t, r.stdout, "Usage: esctl "+c.Name, "%s --help", c.Name)
		require.Contains(t, r.stdout, "Example:", "%s --help", c.Name)
		require.Equal(t, 1, strings.Count(r.stdout, "Usage: "), "%s --help prints its usage more than once", c.Name)
	}
}

func TestMigrateSQL(t *testing.T) {
	r := run(t, Options{}, "postgres://u:pw@db/x", "migrate", "sql")
	require.Equal(t, 0, r.code, "migrate sql: %s", r.stderr)
	require.Contains(t, r.stdout, "CREATE TABLE eventfold.events")
	require.Contains(t, r.stdout, "CREATE TABLE eventfold.archive_watermark")
	require.NotContains(t, r.stdout, "DROP TABLE")
	r = run(t, Options{}, "", "migrate", "sql", "--dialect", "mysql")
	require.Equal(t, 0, r.code, "migrate sql mysql: %s", r.stderr)
	require.Contains(t, r.stdout, "DELIMITER //")
	require.Contains(t, r.stdout, "CREATE PROCEDURE eventfold_append_events")
	r = run(t, Options{}, "", "migrate", "sql", "--dialect", "sqlite", "--down")
	require.Equal(t, 0, r.code, "migrate sql --down: %s", r.stderr)
	require.Contains(t, r.stdout, "DROP TABLE IF EXISTS eventfold_archive_watermark")
	require.NotContains(t, r.stdout, "CREATE TABLE eventfold_events")
}

func TestMigrateUpDownStatus(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.EmptyDSN(t, d)
		out := mustRun(t, dsn, "migrate", "up")
		require.Contains(t, out, "00004_archive.sql", "up")
		mfs, err := eventfold.MigrationsFS(d)
		require.NoError(t, err)
		files, err := fs.Glob(mfs, "*.sql")
		require.NoError(t, err)
		out = mustRun(t, dsn, "migrate", "status")
		require.Equal(t, len(files), strings.Count(out, "applied"), "status: %s", out)
		mustRun(t, dsn, "migrate", "down")
		require.Contains(t, mustRun(t, dsn, "migrate", "status"), "pending", "status after down")
		mustRun(t, dsn, "migrate", "up")
	})
}

func TestPasswordNeverPrinted(t *testing.T) {
	const pw = "s3cret-Pa55"
	for _, dsn := range []string{
		"postgres://postgres:" + pw + "@127.0.0.1:1/nope?connect_timeout=1",
		"mysql://root:" + pw + "@127.0.0.1:1/nope",
	} {
		r := run(t, Options{}, dsn, "read", "--all")
		require.Equal(t, ExitError, r.code, dsn)
		require.NotContains(t, r.stdout+r.stderr, pw, "password printed")
		r = run(t, Options{}, dsn, "stats", "--json")
		require.NotContains(t, r.stdout+r.stderr, pw, "password printed")
	}
	// On a real server too: stats shows the database, redacted.
	dsn := testdb.DSN(t, eventfold.Postgres)
	withPw := strings.Replace(dsn, "postgres://postgres@", "postgres://postgres:"+pw+"@", 1)
	if withPw == dsn {
		t.Skip("PostgreSQL DSN without a plain user@ part")
	}
	r := run(t, Options{}, withPw, "stats", "--json")
	require.Equal(t, 0, r.code, "stdout %s, stderr %s", r.stdout, r.stderr)
	require.NotContains(t, r.stdout+r.stderr, pw, "password printed")
	require.Contains(t, r.stdout, "xxxxx")
}

func TestStats(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		for i := 0; i < 3; i++ {
			mustRun(t, dsn, "append", "--stream", "a-"+jsonInt(int64(i)), "--type", "Opened", "--data", `{}`)
		}
		last := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "a-0", "--type", "Closed", "--data", `{}`))
		waitHead(t, dsn, last[0].GlobalPosition)
		var st Stats
		require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
		today := time.Now().UTC().Format("2006-01-02")
		require.EqualValues(t, 4, st.Events, "stats: %+v", st)
		require.EqualValues(t, 3, st.Streams, "stats: %+v", st)
		require.NotZero(t, st.Head, "stats: %+v", st)
		require.Equal(t, []TypeCount{{"Opened", 3}, {"Closed", 1}}, st.ByType)
		require.Len(t, st.ByDay, 1, "stats: %+v", st)
		require.EqualValues(t, 4, st.ByDay[0].Events, "stats: %+v", st)
		if st.ByDay[0].Day != today { // a run across midnight: the same month
			require.True(t, strings.HasPrefix(today, st.ByDay[0].Day[:8]), "stats: %+v", st)
		}
		require.Empty(t, st.Subscriptions)
		text := mustRun(t, dsn, "stats")
		for _, want := range []string{"events", "streams", "head position", "Opened", "Events per day"} {
			require.Contains(t, text, want)
		}
	})
}

// archiveFixture appends n events over a few streams and returns them as
// read back.
func archiveFixture(t *testing.T, dsn string, n int) []eventfold.Event {
	t.Helper()
	var last int64
	for i := 0; i < n; i++ {
		out := mustRun(t, dsn, "append", "--stream", "acct-"+jsonInt(int64(i%3)), "--type", "Moved",
			"--data", `{"i":`+jsonInt(int64(i))+`,"note":"caf\u00e9 <&>"}`, "--metadata", `{"n":`+jsonInt(int64(i))+`}`)
		last = decodeEvents(t, out)[0].GlobalPosition
	}
	waitHead(t, dsn, last)
	return decodeEvents(t, mustRun(t, dsn, "read", "--all"))
}

// waitHead waits until the log's head reaches pos. On PostgreSQL the head
// (the gap-free horizon) lags while any transaction of the cluster that
// began writing before our appends is still open, and other test
// processes share the cluster.
func waitHead(t *testing.T, dsn string, pos int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := openStore(t, dsn).WaitHead(ctx, pos)
	require.NoError(t, err, "head stuck at %d, want %d", h, pos)
}

func TestArchiveRestoreRoundTrip(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		before := archiveFixture(t, dsn, 7)
		allBefore := mustRun(t, dsn, "read", "--all")
		file := filepath.Join(t.TempDir(), "old.jsonl.gz")
		cut := before[5].GlobalPosition
		out := mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file, "--batch", "2")
		require.Contains(t, out, "deleted 5 events")
		// Reads below the watermark say "archived" and exit 1.
		r := run(t, Options{}, dsn, "read", "--all")
		require.Equal(t, ExitError, r.code, "read --all after archive: stderr %q", r.stderr)
		require.Contains(t, r.stderr, "archived", "read --all after archive")
		r = run(t, Options{}, dsn, "read", "--stream", "acct-0")
		require.Equal(t, ExitError, r.code, "read stream after archive: stderr %q", r.stderr)
		require.Contains(t, r.stderr, "archived", "read stream after archive")
		r = run(t, Options{}, dsn, "tail", "--from", "1", "--limit", "1")
		require.Equal(t, ExitError, r.code, "tail after archive: stderr %q", r.stderr)
		require.Contains(t, r.stderr, "archived", "tail after archive")
		// Above it, reads work; appends go on at the right versions.
		rest := decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(cut)))
		require.Len(t, rest, 2, "read above the watermark: %+v", rest)
		require.Equal(t, before[5].ID, rest[0].ID, "read above the watermark: %+v", rest)
		var st Stats
		require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
		require.Equal(t, cut, st.ArchivedBefore, "stats after archive: %+v", st)
		require.EqualValues(t, 2, st.Events, "stats after archive: %+v", st)
		// Archiving the same range again does nothing.
		require.Contains(t, mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file+"2"), "nothing to archive", "second archive")
		require.Contains(t, mustRun(t, dsn, "restore", "--from", file), "restored 5 events")
		require.Equal(t, allBefore, mustRun(t, dsn, "read", "--all"), "events differ after archive and restore")
		// Restoring again is harmless.
		require.Contains(t, mustRun(t, dsn, "restore", "--from", file), "restored 0 events (5 already present)", "second restore")
		mustRun(t, dsn, "append", "--stream", "acct-0", "--type", "Moved", "--data", `{}`, "--expected-version", "3")
	})
}

func TestArchiveByTime(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		archiveFixture(t, dsn, 3)
		file := filepath.Join(t.TempDir(), "a.gz")
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		out := mustRun(t, dsn, "archive", "--before", future, "--to", file)
		require.Contains(t, out, "deleted 3 events", "archive by time")
		out = mustRun(t, dsn, "archive", "--before", "2000-01-01", "--to", file+".old")
		require.Contains(t, out, "nothing to archive", "archive before 2000")
	})
}

func TestArchiveInterruptedAndResumed(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		before := archiveFixture(t, dsn, 9)
		allBefore := mustRun(t, dsn, "read", "--all")
		file := filepath.Join(t.TempDir(), "a.gz")
		cut := before[7].GlobalPosition
		crash := errors.New("simulated crash")
		opts := Options{hooks: &testHooks{afterArchiveBatch: func(n int) error {
			if n == 2 {
				return crash
			}
			return nil
		}}}
		r := run(t, opts, dsn, "archive", "--before", jsonInt(cut), "--to", file, "--batch", "3")
		require.Equal(t, ExitError, r.code, "interrupted archive: stderr %q", r.stderr)
		require.Contains(t, r.stderr, "simulated crash")
		// Half done: 6 deleted, 1 still there, and reads already say archived.
		r = run(t, Options{}, dsn, "read", "--all")
		require.Equal(t, ExitError, r.code, "read while half archived: %q", r.stderr)
		require.Contains(t, r.stderr, "archived", "read while half archived")
		// Running the same command again resumes from the file.
		out := mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file)
		require.Contains(t, out, "deleted 1 events", "resumed archive")
		rest := decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(cut)))
		require.Len(t, rest, 2, "after resume: events above the watermark")
		mustRun(t, dsn, "restore", "--from", file)
		require.Equal(t, allBefore, mustRun(t, dsn, "read", "--all"), "events lost or duplicated")
	})
}

func TestArchiveRefusesForeignFile(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	archiveFixture(t, dsn, 2)
	file := filepath.Join(t.TempDir(), "precious.txt")
	os.WriteFile(file, []byte("not an archive"), 0o600)
	r := run(t, Options{}, dsn, "archive", "--before", "100", "--to", file)
	require.Equal(t, ExitError, r.code, "stderr %q", r.stderr)
	require.Contains(t, r.stderr, "refusing to overwrite")
	b, _ := os.ReadFile(file)
	require.Equal(t, "not an archive", string(b), "file overwritten")
	require.Len(t, decodeEvents(t, mustRun(t, dsn, "read", "--all")), 2, "events left")
}

func TestRestoreRejectsCorruptFile(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	archiveFixture(t, dsn, 3)
	file := filepath.Join(t.TempDir(), "a.gz")
	mustRun(t, dsn, "archive", "--before", "3", "--to", file)
	// Rewrite the archive with one event changed: the checksum must catch it.
	r, err := openArchive(file)
	require.NoError(t, err)
	h := r.header
	var evs []eventfold.Event
	for {
		e, err := r.next()
		if err != nil {
			break
		}
		evs = append(evs, e)
	}
	r.close()
	w, err := createArchive(file+".bad", h)
	require.NoError(t, err)
	for _, e := range evs {
		w.add(e)
	}
	w.sum.Write([]byte("x")) // a checksum that no longer matches the lines
	_, err = w.close()
	require.NoError(t, err)
	os.Rename(file+".bad.partial", file+".bad")
	res := run(t, Options{}, dsn, "restore", "--from", file+".bad")
	require.Equal(t, ExitError, res.code, "stderr %q", res.stderr)
	require.Contains(t, res.stderr, "corrupt")
}

func TestSubscriptions(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 3)
		require.Contains(t, mustRun(t, dsn, "subscriptions", "list"), "(none)", "list")
		r := run(t, Options{}, dsn, "subscriptions", "reset", "ghost", "--to", "0")
		require.Equal(t, ExitError, r.code, "reset unknown: %q", r.stderr)
		require.Contains(t, r.stderr, `no subscription named "ghost"`, "reset unknown")
		// A checkpoint as package listener writes it.
		store := openStore(t, dsn)
		co := store.Driver().Ops()
		require.NoError(t, co.SetCheckpoint(context.Background(), "projector", evs[0].GlobalPosition))
		var sub Subscription
		out := mustRun(t, dsn, "subscriptions", "list", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &sub), "list --json: %s", out)
		require.Equal(t, "projector", sub.Name, "list --json: %s", out)
		require.EqualValues(t, 2, sub.LagEvents, "list --json: %s", out)
		mustRun(t, dsn, "subscriptions", "reset", "projector", "--to", "head")
		pos, _, _ := co.GetCheckpoint(context.Background(), "projector")
		require.Equal(t, evs[2].GlobalPosition, pos, "checkpoint after reset to head")
		mustRun(t, dsn, "subscriptions", "reset", "projector", "--to", "0")
		var st Stats
		require.NoError(t, json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st))
		require.Len(t, st.Subscriptions, 1, "stats subscriptions: %+v", st.Subscriptions)
		require.EqualValues(t, 3, st.Subscriptions[0].LagEvents, "stats subscriptions: %+v", st.Subscriptions)
	})
}

func openStore(t *testing.T, dsn string) *eventfold.Store[*sql_Tx] {
	t.Helper()
	env := &Env{DSN: dsn}
	s, err := env.Open(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestOutdatedSchema: on a database migrated only up to 00002 (as after
// upgrading esctl and not the database), every command that needs the
// schema says it is outdated, at which version, and how to upgrade it
// (stats used to fail with PostgreSQL's "function eventfold.horizon() does
// not exist"); doctor still runs; after 'migrate up' they work.
func TestOutdatedSchema(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.EmptyDSN(t, d)
		mustRun(t, dsn, "migrate", "up", "--to", "2")
		for _, args := range [][]string{{"stats", "--json"}, {"subscriptions", "list"}, {"read", "--all"}} {
			r := run(t, Options{}, dsn, args...)
			require.Equal(t, ExitError, r.code, "%v: %q", args, r.stderr)
			require.Contains(t, r.stderr, "at version 2, this esctl needs", "%v", args)
			require.Contains(t, r.stderr, "migrate up", "%v", args)
		}
		mustRun(t, dsn, "doctor")
		mustRun(t, dsn, "migrate", "up")
		var st Stats
		out := mustRun(t, dsn, "stats", "--json")
		require.NoError(t, json.Unmarshal([]byte(out), &st), "stats --json: %s", out)
		require.Empty(t, st.Subscriptions, "stats: %s", out)
		require.Contains(t, mustRun(t, dsn, "subscriptions", "list"), "(none)")
	})
}
