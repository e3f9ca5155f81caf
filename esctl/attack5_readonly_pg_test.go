package esctl

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// readOnlyGrants are the README's grants for a PostgreSQL account that
// reads the log (ROLE stands for the account); the last is for the
// version table, which goose keeps in the DSN's schema (public here).
var readOnlyGrants = []string{
	"GRANT USAGE ON SCHEMA eventfold TO ROLE",
	"GRANT SELECT ON ALL TABLES IN SCHEMA eventfold TO ROLE",
	"GRANT SELECT ON ALL SEQUENCES IN SCHEMA eventfold TO ROLE",
	"GRANT SELECT ON eventfold_goose_version TO ROLE",
}

// TestAttack5ReadOnlyPostgresRole: a reporting account with SELECT on
// eventfold's tables, what a DBA grants a reader, could read nothing:
// stats, read, doctor and archive failed with "permission denied for
// sequence position_offset", and tail retried that for ever. The README
// now names the grants a reading account needs; with them every reading
// command works, and a write is refused by the database.
func TestAttack5ReadOnlyPostgresRole(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	appended := decodeEvents(t, mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Opened", "--data", `{}`))
	// Other tests' transactions in the cluster may hold the head below it
	// for a while: read once it is readable.
	waitHead(t, dsn, appended[0].GlobalPosition)
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	db, err := sql.Open("pgx", u.String())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() }) // after the role is dropped (cleanups run last-in first-out)
	role := fmt.Sprintf("eftest_reader_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	_, err = db.Exec(`CREATE ROLE ` + role + ` LOGIN`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP OWNED BY ` + role)
		_, _ = db.Exec(`DROP ROLE ` + role)
	})
	ro := *u
	ro.User = url.User(role)

	// SELECT on the tables alone is not enough.
	_, err = db.Exec(strings.ReplaceAll(readOnlyGrants[0], "ROLE", role))
	require.NoError(t, err)
	_, err = db.Exec(strings.ReplaceAll(readOnlyGrants[1], "ROLE", role))
	require.NoError(t, err)
	r := run(t, Options{}, ro.String(), "read", "--all")
	require.Equal(t, ExitError, r.code)
	require.Contains(t, r.stderr, "permission denied for sequence")

	for _, g := range readOnlyGrants {
		require.Contains(t, string(readme), g+";", "the README gives this grant")
		_, err = db.Exec(strings.ReplaceAll(g, "ROLE", role))
		require.NoError(t, err)
	}
	require.Contains(t, mustRun(t, ro.String(), "read", "--all"), `"stream_id":"acct-1"`)
	require.Contains(t, mustRun(t, ro.String(), "tail", "--from", "0", "--limit", "1"), `"stream_id":"acct-1"`)
	require.Contains(t, mustRun(t, ro.String(), "stats"), "events")
	require.Contains(t, mustRun(t, ro.String(), "doctor"), "positions ok")
	r = run(t, Options{}, ro.String(), "append", "--stream", "acct-2", "--type", "Opened", "--data", `{}`)
	require.Equal(t, ExitError, r.code)
	require.Contains(t, r.stderr, "permission denied")
	require.NotContains(t, mustRun(t, dsn, "read", "--all"), "acct-2", "nothing written")
}
