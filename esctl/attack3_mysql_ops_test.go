package esctl

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// Attacks on MySQL/MariaDB operations from outside (round 3): what an
// operator does with mysqldump, a read-only account and a dump loaded over
// a live database.

// runWithin runs esctl in process with a deadline of its own: a command
// that retries an error it cannot recover from must not hang for minutes.
func runWithin(t *testing.T, d time.Duration, dsn string, args ...string) (result, time.Duration) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{"--dsn", dsn}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	code := Main(ctx, full, &out, &errb, Options{Getenv: func(string) string { return "" }})
	return result{code, out.String(), errb.String()}, time.Since(start)
}

// mysqlAdmin opens the test database of dsn (an eventfold mysql:// URL) with
// go-sql-driver/mysql as the user of the URL, and returns it with the
// database name.
func mysqlAdmin(t *testing.T, dsn string) (*sql.DB, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	user := u.User.Username()
	pass, _ := u.User.Password()
	db, err := sql.Open("mysql", fmt.Sprintf("%s:%s@tcp(%s)/%s?multiStatements=true", user, pass, u.Host, name))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, name
}

// mysqlUser creates a user with no password that may connect from
// anywhere, grants it grants on the test database, and returns dsn with
// that user; the user is dropped when the test ends.
func mysqlUser(t *testing.T, dsn, suffix, grants string) string {
	t.Helper()
	db, name := mysqlAdmin(t, dsn)
	user := fmt.Sprintf("eft_%s_%d", suffix, time.Now().UnixNano()%1e9)
	_, err := db.Exec(fmt.Sprintf("CREATE USER '%s'@'%%'", user))
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user)) })
	_, err = db.Exec(fmt.Sprintf("GRANT %s ON `%s`.* TO '%s'@'%%'", grants, name, user))
	require.NoError(t, err)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.User = url.User(user)
	return u.String()
}

type mysqlMarks struct {
	floor, autoIncrement, watermark int64
}

func readMySQLMarks(t *testing.T, db *sql.DB) mysqlMarks {
	t.Helper()
	var m mysqlMarks
	require.NoError(t, db.QueryRow(`SELECT
	    (SELECT last_position FROM eventfold_position WHERE id = 1),
	    (SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'eventfold_events'),
	    COALESCE((SELECT MAX(archived_before) FROM eventfold_archive_watermark), 0)`).Scan(&m.floor, &m.autoIncrement, &m.watermark))
	return m
}

// TestAttack3DoctorReadOnlyMySQL: an operator with a SELECT-only account
// runs `esctl doctor` on a MariaDB database whose positions need repair.
// doctor read the schema version through goose's migration lock, which on
// MySQL is a row INSERTed into eventfold_goose_version_lock: the INSERT was
// refused, goose retried the refusal for 5 minutes (300 x 1 s) and doctor
// then failed with "acquire lock ... INSERT command denied", reporting
// nothing. It must report at once (exit 1: repair needed), and --repair must
// fail clearly (denied) having changed nothing.
func TestAttack3DoctorReadOnlyMySQL(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.MySQL)
	admin, _ := mysqlAdmin(t, dsn)
	for i := range 4 {
		mustRun(t, dsn, "append", "--stream", fmt.Sprintf("s-%d", i%2), "--type", "T", "--data", `{}`)
	}
	mustRun(t, dsn, "archive", "--before", "5", "--to", t.TempDir()+"/a.jsonl.gz")
	_, err := admin.Exec(`TRUNCATE TABLE eventfold_events`)
	require.NoError(t, err)
	before := readMySQLMarks(t, admin)
	require.LessOrEqual(t, before.autoIncrement, before.floor, "the positions must need repair: %+v", before)

	ro := mysqlUser(t, dsn, "ro", "SELECT")
	r, took := runWithin(t, 30*time.Second, ro, "doctor")
	t.Logf("doctor as a SELECT-only user: exit %d after %s\nstdout: %s\nstderr: %s", r.code, took, r.stdout, r.stderr)
	require.Less(t, took, 20*time.Second, "doctor must not retry a refusal")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, "positions need repair")
	require.NotContains(t, r.stderr, "lock")

	r, took = runWithin(t, 30*time.Second, ro, "doctor", "--repair")
	t.Logf("doctor --repair as a SELECT-only user: exit %d after %s\nstdout: %s\nstderr: %s", r.code, took, r.stdout, r.stderr)
	require.Less(t, took, 20*time.Second)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "denied")
	require.Equal(t, before, readMySQLMarks(t, admin), "a refused repair must change nothing")

	r, took = runWithin(t, 30*time.Second, ro, "migrate", "status")
	t.Logf("migrate status as a SELECT-only user: exit %d after %s\nstdout: %s\nstderr: %s", r.code, took, r.stdout, r.stderr)
	require.Less(t, took, 20*time.Second)
	require.Equal(t, before, readMySQLMarks(t, admin))

	// The owner's doctor --repair then works.
	out := mustRun(t, dsn, "doctor", "--repair")
	require.Contains(t, out, "positions repaired")
}

// mysqldumpTo runs mysqldump with args over the database of from and loads
// the output into the database of to with the mysql client, as an operator
// would: mysqldump ARGS from | mysql to.
func mysqldumpTo(t *testing.T, from, to string, args ...string) {
	t.Helper()
	dump, err := exec.LookPath("mysqldump")
	if err != nil {
		t.Skip("mysqldump is not installed")
	}
	client, err := exec.LookPath("mysql")
	if err != nil {
		t.Skip("the mysql client is not installed")
	}
	conn := func(dsn string) []string {
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		a := []string{"-h", u.Hostname(), "-P", u.Port(), "-u", u.User.Username()}
		if p, ok := u.User.Password(); ok {
			a = append(a, "-p"+p)
		}
		return append(a, strings.TrimPrefix(u.Path, "/"))
	}
	out, err := exec.Command(dump, append(args, conn(from)...)...).Output()
	require.NoError(t, err, "mysqldump")
	load := exec.Command(client, conn(to)...)
	load.Stdin = bytes.NewReader(out)
	msg, err := load.CombinedOutput()
	require.NoError(t, err, "mysql: %s", msg)
}

// TestAttack3DumpWithoutRoutines: an operator moves a MariaDB database with
// plain `mysqldump db | mysql newdb`. mysqldump leaves stored procedures out
// unless given --routines, so the new database has eventfold's tables and its
// version table (at the latest version) but none of the append procedures.
// doctor said "positions ok" (exit 0), migrate up said "no pending
// migrations", and every append failed with the bare "Error 1305: PROCEDURE
// ... does not exist". doctor must name the missing procedures and the way
// back (exit 1), the append's error must point there, and the way back
// must work.
func TestAttack3DumpWithoutRoutines(t *testing.T) {
	src := testdb.DSN(t, eventfold.MySQL)
	for i := range 3 {
		mustRun(t, src, "append", "--stream", fmt.Sprintf("s-%d", i), "--type", "T", "--data", `{}`)
	}
	dst := testdb.EmptyDSN(t, eventfold.MySQL)
	mysqldumpTo(t, src, dst, "--single-transaction")

	r := run(t, Options{}, dst, "doctor")
	t.Logf("doctor: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	require.Equal(t, 1, r.code, "doctor must see the missing procedures")
	require.Contains(t, r.stdout, "eventfold_append_events")
	require.Contains(t, r.stdout, "--routines")

	r = run(t, Options{}, dst, "append", "--stream", "s-0", "--type", "T", "--data", `{}`)
	t.Logf("append: exit %d\nstderr: %s", r.code, r.stderr)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "doctor")

	// The way back doctor gives.
	mustRun(t, dst, "migrate", "down", "--to", "17")
	mustRun(t, dst, "migrate", "up")
	mustRun(t, dst, "doctor")
	evs := decodeEvents(t, mustRun(t, dst, "append", "--stream", "s-0", "--type", "T", "--data", `{}`))
	require.Len(t, evs, 1)
	require.Equal(t, int64(2), evs[0].StreamVersion)
	require.Greater(t, evs[0].GlobalPosition, int64(3))
}

// TestAttack3OlderDumpOverLiveDatabase: an operator loads a dump taken
// earlier (mysqldump --no-create-info --replace, the form the README
// recommends for moving) back over the live database, after an archive
// and more appends. The events appended since stay (REPLACE only rewrites
// the dumped rows), but each stream's row in eventfold_streams goes back to
// the version it had then. doctor said "positions ok" and every later
// append to such a stream failed, forever, with the bare "Error 1062:
// Duplicate entry 's-0-3' for key 'eventfold_events_stream_version_key'".
// doctor must name the streams whose row is behind their events, and the
// append's error must say what happened.
func TestAttack3OlderDumpOverLiveDatabase(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.MySQL)
	for i := range 4 {
		mustRun(t, dsn, "append", "--stream", fmt.Sprintf("s-%d", i%2), "--type", "T", "--data", `{}`)
	}
	old := testdb.EmptyDSN(t, eventfold.MySQL)
	mysqldumpTo(t, dsn, old) // a copy of the database as it was
	mustRun(t, dsn, "archive", "--before", "5", "--to", t.TempDir()+"/a.jsonl.gz")
	for i := range 4 {
		mustRun(t, dsn, "append", "--stream", fmt.Sprintf("s-%d", i%2), "--type", "T", "--data", `{}`)
	}
	mysqldumpTo(t, old, dsn, "--no-create-info", "--replace")

	r := run(t, Options{}, dsn, "doctor")
	t.Logf("doctor: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	require.Equal(t, 1, r.code, "doctor must see the stream rows behind their events")
	require.Contains(t, r.stdout, "s-0")

	r = run(t, Options{}, dsn, "append", "--stream", "s-0", "--type", "T", "--data", `{}`)
	t.Logf("append: exit %d\nstderr: %s", r.code, r.stderr)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "doctor")
}

// TestAttack3HalfMigratedMySQL: `esctl migrate up` from 17 to 18 stops
// midway: the account may drop procedures (ALTER ROUTINE) but not create
// them (no CREATE ROUTINE), so 00018 dropped the three append procedures
// and failed on its first CREATE PROCEDURE; MySQL's DDL is not
// transactional and the version stays 17. doctor said "positions ok" (exit
// 0). It must name the missing procedures and say 'migrate up'; an append
// must be refused clearly and write nothing; a migrate up by the owner
// must finish the job.
func TestAttack3HalfMigratedMySQL(t *testing.T) {
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	mustRun(t, dsn, "migrate", "up", "--to", "17")
	weak := mysqlUser(t, dsn, "half", "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, ALTER ROUTINE, EXECUTE, LOCK TABLES, CREATE TEMPORARY TABLES")
	r, took := runWithin(t, 60*time.Second, weak, "migrate", "up")
	t.Logf("migrate up without CREATE ROUTINE: exit %d after %s\nstdout: %s\nstderr: %s", r.code, took, r.stdout, r.stderr)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "version:18")

	r = run(t, Options{}, dsn, "doctor")
	t.Logf("doctor: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	require.Equal(t, 1, r.code, "doctor must see the dropped procedures")
	require.Contains(t, r.stdout, "procedures missing: eventfold_append_events, eventfold_append_one, eventfold_append_batch")
	require.Contains(t, r.stdout, "esctl migrate up")

	r = run(t, Options{}, dsn, "append", "--stream", "h", "--type", "T", "--data", `{}`)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "migrate up")
	admin, _ := mysqlAdmin(t, dsn)
	var n int
	require.NoError(t, admin.QueryRow(`SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
	require.Zero(t, n)

	mustRun(t, dsn, "migrate", "up")
	require.Contains(t, mustRun(t, dsn, "doctor"), "positions ok")
	evs := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "h", "--type", "T", "--data", `{}`))
	require.Len(t, evs, 1)
}

// TestAttack3TruncateLiveWithoutCheckpoint: a DBA empties eventfold_events
// with TRUNCATE (no archive) on a database without subscriptions, then
// the application appends again. AUTO_INCREMENT restarted at 1 and the
// append took position 1 again; with no checkpoint and no archive nothing
// remembered the old positions and doctor said "positions ok" (exit 0).
// doctor must report the lost events (exit 1).
func TestAttack3TruncateLiveWithoutCheckpoint(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.MySQL)
	for i := range 3 {
		mustRun(t, dsn, "append", "--stream", fmt.Sprintf("t-%d", i), "--type", "T", "--data", `{}`)
	}
	admin, _ := mysqlAdmin(t, dsn)
	_, err := admin.Exec(`TRUNCATE TABLE eventfold_events`)
	require.NoError(t, err)
	mustRun(t, dsn, "append", "--stream", "t-0", "--type", "T", "--data", `{}`)
	r := run(t, Options{}, dsn, "doctor")
	t.Logf("doctor: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stdout, "events deleted without an archive")

	// Archived and restored in full: nothing is missing, doctor is quiet.
	ok := testdb.DSN(t, eventfold.MySQL)
	for i := range 3 {
		mustRun(t, ok, "append", "--stream", fmt.Sprintf("t-%d", i), "--type", "T", "--data", `{}`)
	}
	file := t.TempDir() + "/a.jsonl.gz"
	mustRun(t, ok, "archive", "--before", "4", "--to", file)
	mustRun(t, ok, "doctor")
	mustRun(t, ok, "restore", "--from", file)
	mustRun(t, ok, "doctor")
}
