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
	if r.code != 0 {
		t.Fatalf("esctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
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
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("not an event line: %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	return evs
}

func TestAppendReadRoundTrip(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		out := mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Opened",
			"--data", `{"owner":"ada","tags":["<b>"]}`, "--metadata", `{"correlation_id":"c1"}`, "--expected-version", "no-stream")
		evs := decodeEvents(t, out)
		if len(evs) != 1 || evs[0].StreamVersion != 1 || evs[0].Type != "Opened" {
			t.Fatalf("append printed %q", out)
		}
		// Exactly the contract's fields, nothing more.
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &fields); err != nil {
			t.Fatal(err)
		}
		want := []string{"global_position", "stream_id", "stream_version", "id", "type", "data", "metadata", "recorded_at"}
		if len(fields) != len(want) {
			t.Fatalf("fields %v, want %v", fields, want)
		}
		for _, f := range want {
			if _, ok := fields[f]; !ok {
				t.Fatalf("field %q missing in %s", f, out)
			}
		}
		mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Deposited", "--data", `{"amount":5}`, "--expected-version", "1")
		last := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "acct-2", "--type", "Opened", "--data", `null`))
		waitHead(t, dsn, last[0].GlobalPosition)

		stream := decodeEvents(t, mustRun(t, dsn, "read", "--stream", "acct-1"))
		if len(stream) != 2 || stream[0].ID != evs[0].ID || stream[1].Type != "Deposited" {
			t.Fatalf("read stream: %+v", stream)
		}
		var data map[string]any
		if err := json.Unmarshal(stream[0].Data, &data); err != nil || data["owner"] != "ada" {
			t.Fatalf("data %s", stream[0].Data)
		}
		back := decodeEvents(t, mustRun(t, dsn, "read", "--stream", "acct-1", "--backward", "--limit", "1"))
		if len(back) != 1 || back[0].StreamVersion != 2 {
			t.Fatalf("backward: %+v", back)
		}
		all := decodeEvents(t, mustRun(t, dsn, "read", "--all"))
		if len(all) != 3 || all[2].StreamID != "acct-2" {
			t.Fatalf("read all: %+v", all)
		}
		from := decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(all[1].GlobalPosition), "--limit", "1"))
		if len(from) != 1 || from[0].ID != all[1].ID {
			t.Fatalf("read all --from: %+v", from)
		}
		tail := decodeEvents(t, mustRun(t, dsn, "tail", "--from", "0", "--stream", "acct-", "--type", "Opened", "--limit", "2"))
		if len(tail) != 2 || tail[0].StreamID != "acct-1" || tail[1].StreamID != "acct-2" {
			t.Fatalf("tail: %+v", tail)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestConflictExits3(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		mustRun(t, dsn, "append", "--stream", "s", "--type", "T", "--data", `{}`)
		r := run(t, Options{}, dsn, "append", "--stream", "s", "--type", "T", "--data", `{}`, "--expected-version", "no-stream")
		if r.code != ExitWrongVersion || !strings.Contains(r.stderr, "wrong expected version") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
		r = run(t, Options{}, dsn, "append", "--stream", "s", "--type", "T", "--data", `{}`, "--expected-version", "7")
		if r.code != ExitWrongVersion || !strings.Contains(r.stderr, "actual 1") {
			t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
		}
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
		if r.code != ExitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("esctl %q: exit %d, stderr %q; want exit 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(dsn, "sqlite://")); err == nil {
		t.Errorf("a usage error opened the database")
	}
}

// TestBadFlagKeepsStdoutClean: stdout carries results only; a bad flag
// says so on stderr and must not dump the command's help onto stdout.
func TestBadFlagKeepsStdoutClean(t *testing.T) {
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "never-opened.db")
	for _, args := range [][]string{{"append", "--nope"}, {"read", "--all", "--limit", "x"}, {"archive", "--batch", "many"}} {
		r := run(t, Options{}, dsn, args...)
		if r.code != ExitUsage || r.stdout != "" || strings.Contains(r.stderr, "Example:") {
			t.Errorf("esctl %q: exit %d, stdout %q, stderr %q; want exit 2, empty stdout, no help", args, r.code, r.stdout, r.stderr)
		}
	}
	// --help after a bad flag in an earlier command of the same process
	// still prints exactly one usage.
	r := run(t, Options{}, "", "help", "read")
	if r.code != 0 || strings.Count(r.stdout, "Usage: esctl read") != 1 {
		t.Fatalf("help read: exit %d, stdout %q", r.code, r.stdout)
	}
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
	if r.code != ExitError || !strings.Contains(r.stderr, "choose a new --to") {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if n := len(decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(evs[2].GlobalPosition)))); n != 4 {
		t.Fatalf("%d events above the first archive, want 4 (nothing more archived)", n)
	}
	// After a restore, the old file re-archives its own range only, and
	// says that the rest was not archived.
	mustRun(t, dsn, "restore", "--from", file)
	r = run(t, Options{}, dsn, "archive", "--before", jsonInt(evs[4].GlobalPosition), "--to", file)
	if r.code != ExitError || !strings.Contains(r.stderr, "2 events deleted by this run") {
		t.Fatalf("after restore: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestHelpEverywhere(t *testing.T) {
	for _, c := range builtins() {
		r := run(t, Options{}, "", c.Name, "--help")
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: esctl "+c.Name) || !strings.Contains(r.stdout, "Example:") {
			t.Errorf("%s --help: exit %d, stdout %q", c.Name, r.code, r.stdout)
		}
		if n := strings.Count(r.stdout, "Usage: "); n != 1 {
			t.Errorf("%s --help prints its usage %d times", c.Name, n)
		}
	}
}

func TestMigrateSQL(t *testing.T) {
	r := run(t, Options{}, "postgres://u:pw@db/x", "migrate", "sql")
	if r.code != 0 || !strings.Contains(r.stdout, "CREATE TABLE eventfold.events") ||
		!strings.Contains(r.stdout, "CREATE TABLE eventfold.archive_watermark") || strings.Contains(r.stdout, "DROP TABLE") {
		t.Fatalf("migrate sql: exit %d\n%s", r.code, r.stdout)
	}
	r = run(t, Options{}, "", "migrate", "sql", "--dialect", "mysql")
	if r.code != 0 || !strings.Contains(r.stdout, "DELIMITER //") || !strings.Contains(r.stdout, "CREATE PROCEDURE eventfold_append_events") {
		t.Fatalf("migrate sql mysql: exit %d\n%s", r.code, r.stdout)
	}
	r = run(t, Options{}, "", "migrate", "sql", "--dialect", "sqlite", "--down")
	if r.code != 0 || !strings.Contains(r.stdout, "DROP TABLE IF EXISTS eventfold_archive_watermark") || strings.Contains(r.stdout, "CREATE TABLE eventfold_events") {
		t.Fatalf("migrate sql --down: exit %d\n%s", r.code, r.stdout)
	}
}

func TestMigrateUpDownStatus(t *testing.T) {
	testdb.EachDialectOf(t, testdb.WithoutSQLServer(), func(t *testing.T, d eventfold.Dialect) {
		t.Parallel()
		dsn := testdb.EmptyDSN(t, d)
		out := mustRun(t, dsn, "migrate", "up")
		if !strings.Contains(out, "00004_archive.sql") {
			t.Fatalf("up: %s", out)
		}
		mfs, err := eventfold.MigrationsFS(d)
		if err != nil {
			t.Fatal(err)
		}
		files, err := fs.Glob(mfs, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		if out := mustRun(t, dsn, "migrate", "status"); strings.Count(out, "applied") != len(files) {
			t.Fatalf("status: %s", out)
		}
		mustRun(t, dsn, "migrate", "down")
		if out := mustRun(t, dsn, "migrate", "status"); !strings.Contains(out, "pending") {
			t.Fatalf("status after down: %s", out)
		}
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
		if r.code != ExitError {
			t.Errorf("%s: exit %d", dsn, r.code)
		}
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Errorf("password printed: %q", r.stderr)
		}
		r = run(t, Options{}, dsn, "stats", "--json")
		if strings.Contains(r.stdout+r.stderr, pw) {
			t.Errorf("password printed: %q", r.stderr)
		}
	}
	// On a real server too: stats shows the database, redacted.
	dsn := testdb.DSN(t, eventfold.Postgres)
	withPw := strings.Replace(dsn, "postgres://postgres@", "postgres://postgres:"+pw+"@", 1)
	if withPw == dsn {
		t.Skip("PostgreSQL DSN without a plain user@ part")
	}
	r := run(t, Options{}, withPw, "stats", "--json")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, pw) || !strings.Contains(r.stdout, "xxxxx") {
		t.Fatalf("exit %d, stdout %s, stderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestStats(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		for i := 0; i < 3; i++ {
			mustRun(t, dsn, "append", "--stream", "a-"+jsonInt(int64(i)), "--type", "Opened", "--data", `{}`)
		}
		last := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "a-0", "--type", "Closed", "--data", `{}`))
		waitHead(t, dsn, last[0].GlobalPosition)
		var st Stats
		if err := json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		today := time.Now().UTC().Format("2006-01-02")
		if st.Events != 4 || st.Streams != 3 || st.Head == 0 || len(st.ByType) != 2 ||
			st.ByType[0] != (TypeCount{"Opened", 3}) || st.ByType[1] != (TypeCount{"Closed", 1}) ||
			len(st.ByDay) != 1 || st.ByDay[0].Events != 4 || (st.ByDay[0].Day != today && !strings.HasPrefix(today, st.ByDay[0].Day[:8])) {
			t.Fatalf("stats: %+v", st)
		}
		if len(st.Subscriptions) != 0 {
			t.Fatalf("subscriptions: %+v", st.Subscriptions)
		}
		text := mustRun(t, dsn, "stats")
		for _, want := range []string{"events", "streams", "head position", "Opened", "Events per day"} {
			if !strings.Contains(text, want) {
				t.Fatalf("stats text lacks %q:\n%s", want, text)
			}
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
	if h, err := openStore(t, dsn).WaitHead(ctx, pos); err != nil {
		t.Fatalf("head stuck at %d, want %d: %v", h, pos, err)
	}
}

func TestArchiveRestoreRoundTrip(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		before := archiveFixture(t, dsn, 7)
		allBefore := mustRun(t, dsn, "read", "--all")
		file := filepath.Join(t.TempDir(), "old.jsonl.gz")
		cut := before[5].GlobalPosition
		out := mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file, "--batch", "2")
		if !strings.Contains(out, "deleted 5 events") {
			t.Fatalf("archive: %s", out)
		}
		// Reads below the watermark say "archived" and exit 1.
		r := run(t, Options{}, dsn, "read", "--all")
		if r.code != ExitError || !strings.Contains(r.stderr, "archived") {
			t.Fatalf("read --all after archive: exit %d, stderr %q", r.code, r.stderr)
		}
		r = run(t, Options{}, dsn, "read", "--stream", "acct-0")
		if r.code != ExitError || !strings.Contains(r.stderr, "archived") {
			t.Fatalf("read stream after archive: exit %d, stderr %q", r.code, r.stderr)
		}
		r = run(t, Options{}, dsn, "tail", "--from", "1", "--limit", "1")
		if r.code != ExitError || !strings.Contains(r.stderr, "archived") {
			t.Fatalf("tail after archive: exit %d, stderr %q", r.code, r.stderr)
		}
		// Above it, reads work; appends go on at the right versions.
		rest := decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(cut)))
		if len(rest) != 2 || rest[0].ID != before[5].ID {
			t.Fatalf("read above the watermark: %+v", rest)
		}
		var st Stats
		json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st)
		if st.ArchivedBefore != cut || st.Events != 2 {
			t.Fatalf("stats after archive: %+v", st)
		}
		// Archiving the same range again does nothing.
		if out := mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file+"2"); !strings.Contains(out, "nothing to archive") {
			t.Fatalf("second archive: %s", out)
		}
		out = mustRun(t, dsn, "restore", "--from", file)
		if !strings.Contains(out, "restored 5 events") {
			t.Fatalf("restore: %s", out)
		}
		if after := mustRun(t, dsn, "read", "--all"); after != allBefore {
			t.Fatalf("events differ after archive and restore:\nbefore:\n%s\nafter:\n%s", allBefore, after)
		}
		// Restoring again is harmless.
		if out := mustRun(t, dsn, "restore", "--from", file); !strings.Contains(out, "restored 0 events (5 already present)") {
			t.Fatalf("second restore: %s", out)
		}
		mustRun(t, dsn, "append", "--stream", "acct-0", "--type", "Moved", "--data", `{}`, "--expected-version", "3")
	})
}

func TestArchiveByTime(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		archiveFixture(t, dsn, 3)
		file := filepath.Join(t.TempDir(), "a.gz")
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		out := mustRun(t, dsn, "archive", "--before", future, "--to", file)
		if !strings.Contains(out, "deleted 3 events") {
			t.Fatalf("archive by time: %s", out)
		}
		out = mustRun(t, dsn, "archive", "--before", "2000-01-01", "--to", file+".old")
		if !strings.Contains(out, "nothing to archive") {
			t.Fatalf("archive before 2000: %s", out)
		}
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
		if r.code != ExitError || !strings.Contains(r.stderr, "simulated crash") {
			t.Fatalf("interrupted archive: exit %d, stderr %q", r.code, r.stderr)
		}
		// Half done: 6 deleted, 1 still there, and reads already say archived.
		r = run(t, Options{}, dsn, "read", "--all")
		if r.code != ExitError || !strings.Contains(r.stderr, "archived") {
			t.Fatalf("read while half archived: exit %d, %q", r.code, r.stderr)
		}
		// Running the same command again resumes from the file.
		out := mustRun(t, dsn, "archive", "--before", jsonInt(cut), "--to", file)
		if !strings.Contains(out, "deleted 1 events") {
			t.Fatalf("resumed archive: %s", out)
		}
		rest := decodeEvents(t, mustRun(t, dsn, "read", "--all", "--from", jsonInt(cut)))
		if len(rest) != 2 {
			t.Fatalf("after resume: %d events above the watermark", len(rest))
		}
		mustRun(t, dsn, "restore", "--from", file)
		if after := mustRun(t, dsn, "read", "--all"); after != allBefore {
			t.Fatalf("events lost or duplicated:\nbefore:\n%s\nafter:\n%s", allBefore, after)
		}
	})
}

func TestArchiveRefusesForeignFile(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	archiveFixture(t, dsn, 2)
	file := filepath.Join(t.TempDir(), "precious.txt")
	os.WriteFile(file, []byte("not an archive"), 0o600)
	r := run(t, Options{}, dsn, "archive", "--before", "100", "--to", file)
	if r.code != ExitError || !strings.Contains(r.stderr, "refusing to overwrite") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if b, _ := os.ReadFile(file); string(b) != "not an archive" {
		t.Fatalf("file overwritten")
	}
	if n := len(decodeEvents(t, mustRun(t, dsn, "read", "--all"))); n != 2 {
		t.Fatalf("%d events left", n)
	}
}

func TestRestoreRejectsCorruptFile(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.SQLite)
	archiveFixture(t, dsn, 3)
	file := filepath.Join(t.TempDir(), "a.gz")
	mustRun(t, dsn, "archive", "--before", "3", "--to", file)
	// Rewrite the archive with one event changed: the checksum must catch it.
	r, err := openArchive(file)
	if err != nil {
		t.Fatal(err)
	}
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
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		w.add(e)
	}
	w.sum.Write([]byte("x")) // a checksum that no longer matches the lines
	if _, err := w.close(); err != nil {
		t.Fatal(err)
	}
	os.Rename(file+".bad.partial", file+".bad")
	res := run(t, Options{}, dsn, "restore", "--from", file+".bad")
	if res.code != ExitError || !strings.Contains(res.stderr, "corrupt") {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestSubscriptions(t *testing.T) {
	forDialects(t, func(t *testing.T, dsn string) {
		evs := archiveFixture(t, dsn, 3)
		if out := mustRun(t, dsn, "subscriptions", "list"); !strings.Contains(out, "(none)") {
			t.Fatalf("list: %s", out)
		}
		r := run(t, Options{}, dsn, "subscriptions", "reset", "ghost", "--to", "0")
		if r.code != ExitError || !strings.Contains(r.stderr, `no subscription named "ghost"`) {
			t.Fatalf("reset unknown: exit %d, %q", r.code, r.stderr)
		}
		// A checkpoint as package listener writes it.
		store := openStore(t, dsn)
		co := store.Driver().Ops()
		if err := co.SetCheckpoint(context.Background(), "projector", evs[0].GlobalPosition); err != nil {
			t.Fatal(err)
		}
		var sub Subscription
		out := mustRun(t, dsn, "subscriptions", "list", "--json")
		if err := json.Unmarshal([]byte(out), &sub); err != nil || sub.Name != "projector" || sub.LagEvents != 2 {
			t.Fatalf("list --json: %s", out)
		}
		mustRun(t, dsn, "subscriptions", "reset", "projector", "--to", "head")
		pos, _, _ := co.GetCheckpoint(context.Background(), "projector")
		if pos != evs[2].GlobalPosition {
			t.Fatalf("checkpoint %d after reset to head, want %d", pos, evs[2].GlobalPosition)
		}
		mustRun(t, dsn, "subscriptions", "reset", "projector", "--to", "0")
		var st Stats
		json.Unmarshal([]byte(mustRun(t, dsn, "stats", "--json")), &st)
		if len(st.Subscriptions) != 1 || st.Subscriptions[0].LagEvents != 3 {
			t.Fatalf("stats subscriptions: %+v", st.Subscriptions)
		}
	})
}

func openStore(t *testing.T, dsn string) *eventfold.Store[*sql_Tx] {
	t.Helper()
	env := &Env{DSN: dsn}
	s, err := env.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
