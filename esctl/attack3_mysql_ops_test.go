package esctl

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
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

var _ = os.Getenv
var _ = exec.Command
