package esctl

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
)

// TestAttackDoctorWithoutRights: esctl doctor (and every command) run as a
// role that may not read eventfold's tables said "the eventfold schema is
// not installed ... migrate up installs it": wrong, and the advice would
// have the operator run migrations as the wrong role. It must say the
// database refused (permission denied) and not claim the schema is
// missing.
func TestAttackDoctorWithoutRights(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	mustRun(t, dsn, "append", "--stream", "acct-1", "--type", "Opened", "--data", `{}`)
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	admin := *u
	admin.Scheme = "postgres"
	db, err := sql.Open("pgx", admin.String())
	require.NoError(t, err)
	defer db.Close()
	role := fmt.Sprintf("eftest_norights_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	_, err = db.Exec(`CREATE ROLE ` + role + ` LOGIN`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP OWNED BY ` + role)
		_, _ = db.Exec(`DROP ROLE ` + role)
	})
	u.User = url.User(role)
	r := run(t, Options{}, u.String(), "doctor")
	require.NotEqual(t, 0, r.code)
	require.NotContains(t, r.stderr, "not installed")
	require.Contains(t, r.stderr, "permission denied")
}
