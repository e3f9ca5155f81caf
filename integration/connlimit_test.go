package integration

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestConnectionLimitIsTransient: a connection the server refuses because
// too many are open is an error a retry may cure (nothing was written, the
// connections in use come back), and both servers' dialects say so through
// ClassifyError: PostgreSQL's too_many_connections (53300), here from a
// role's CONNECTION LIMIT; MySQL/MariaDB's 1226 from an account's
// MAX_USER_CONNECTIONS (1040, the server-wide max_connections, may not be
// provoked on this shared server). Before, neither was transient. An
// account's hourly quota (1226 naming max_queries_per_hour) is not: a
// retry within seconds cannot cure it. The accounts are created for the
// test and dropped after it; no server-wide setting is touched.
func TestConnectionLimitIsTransient(t *testing.T) {
	ctx := context.Background()
	user := fmt.Sprintf("eft_connlim_%d", time.Now().UnixNano()%1e9)
	for _, d := range []eventfold.Dialect{eventfold.Postgres, eventfold.MySQL} {
		t.Run(string(d), func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			adminDrv, err := sqldriver.Open(ctx, dsn)
			require.NoError(t, err)
			defer adminDrv.Close()
			admin := adminDrv.DB()
			var create, grant, drop []string
			switch d {
			case eventfold.Postgres:
				var db string
				require.NoError(t, admin.QueryRowContext(ctx, `SELECT current_database()`).Scan(&db))
				create = []string{fmt.Sprintf(`CREATE ROLE %s LOGIN CONNECTION LIMIT 1`, user)}
				grant = []string{fmt.Sprintf(`GRANT CONNECT ON DATABASE %s TO %s`, db, user)}
				drop = []string{fmt.Sprintf(`DROP OWNED BY %s`, user), fmt.Sprintf(`DROP ROLE IF EXISTS %s`, user)}
			case eventfold.MySQL:
				var db string
				require.NoError(t, admin.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&db))
				create = []string{
					fmt.Sprintf(`CREATE USER '%s'@'%%' WITH MAX_USER_CONNECTIONS 1`, user),
					fmt.Sprintf(`CREATE USER '%s_q'@'%%' WITH MAX_QUERIES_PER_HOUR 1`, user),
				}
				grant = []string{fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", db, user), fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s_q'@'%%'", db, user)}
				drop = []string{fmt.Sprintf(`DROP USER IF EXISTS '%s'@'%%'`, user), fmt.Sprintf(`DROP USER IF EXISTS '%s_q'@'%%'`, user)}
			}
			defer func() {
				for _, q := range drop {
					if _, err := admin.ExecContext(ctx, q); err != nil {
						t.Logf("%s: %v", q, err)
					}
				}
			}()
			for _, q := range append(create, grant...) {
				_, err := admin.ExecContext(ctx, q)
				require.NoError(t, err, q)
			}
			as := func(name string) (*sqldriver.Driver, error) {
				u, err := url.Parse(dsn)
				require.NoError(t, err)
				u.User = url.User(name)
				drv, err := sqldriver.Open(ctx, u.String())
				if err == nil {
					t.Cleanup(func() { drv.Close() })
				}
				return drv, err
			}
			drv, err := as(user)
			require.NoError(t, err)
			held, err := drv.DB().Conn(ctx)
			require.NoError(t, err, "the account's one connection")
			defer held.Close()
			var second *sql.Conn
			second, err = drv.DB().Conn(ctx)
			if err == nil {
				second.Close()
			}
			require.Error(t, err, "a second connection over the account's limit")
			ops := drv.Ops()
			require.True(t, ops.ServerReported(err), "the server refused it: %v", err)
			require.ErrorIs(t, ops.ClassifyError(err), eventfold.ErrTransient, "refused connection: %v", err)
			t.Logf("refused: %v", err)

			// Dispatch meets the refusal at BEGIN, where it takes its
			// connection: it must say transient there too (and retry),
			// not return the raw driver error.
			o := orchestrator.New(eventfold.New(drv, nil), &orchestrator.Config{MaxAttempts: 2, BaseBackoff: time.Millisecond})
			orchestrator.HandleAny(o, "Open", func(_ context.Context, _ *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "connlimit", Type: "Opened", Data: json.RawMessage(`{}`)}}, nil
			})
			_, derr := o.Dispatch(ctx, orchestrator.Command{Name: "Open"})
			require.ErrorIs(t, derr, eventfold.ErrTransient, "dispatch refused a connection at BEGIN: %v", derr)

			if d == eventfold.MySQL {
				// Opening may already run into the quota (the driver's
				// session set-up counts as queries).
				q, qerr := as(user + "_q")
				for i := 0; i < 5 && qerr == nil; i++ {
					qerr = q.DB().QueryRowContext(ctx, `SELECT 1`).Scan(new(int))
				}
				require.Error(t, qerr, "the hourly quota of 1 query")
				require.Contains(t, qerr.Error(), "max_queries_per_hour")
				require.True(t, ops.ServerReported(qerr), "%v", qerr)
				require.NotErrorIs(t, ops.ClassifyError(qerr), eventfold.ErrTransient, "hourly quota: %v", qerr)
			}
		})
	}
}
