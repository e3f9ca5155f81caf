package mysqldriver_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
	"github.com/eventfold/eventfold/sqldriver/mysqldriver"
)

// TestConfigDriverParams: go-sql-driver options in a mysql:// URL
// configure the driver (they are not system variables), and the session
// time zone stays UTC whatever the URL says.
func TestConfigDriverParams(t *testing.T) {
	cfg, err := mysqldriver.Config("mysql://u:p@db.example:3307/app?tls=skip-verify&timeout=7s&parseTime=false&time_zone=%27-05:00%27&sql_mode=%27ANSI%27")
	require.NoError(t, err)
	require.NotNil(t, cfg.TLS, "tls=skip-verify applied")
	require.Equal(t, 7*time.Second, cfg.Timeout)
	require.True(t, cfg.ParseTime)
	require.Equal(t, time.UTC, cfg.Loc)
	require.Equal(t, "'+00:00'", cfg.Params["time_zone"], "the session time zone is always UTC")
	require.Equal(t, "'ANSI'", cfg.Params["sql_mode"], "a system variable is passed on")
	for _, k := range []string{"tls", "timeout", "parseTime"} {
		require.NotContains(t, cfg.Params, k, "driver option %s was passed on as a system variable", k)
	}
	require.Equal(t, "db.example:3307", cfg.Addr)
	require.Equal(t, "u", cfg.User)
	require.Equal(t, "p", cfg.Passwd)
	require.Equal(t, "app", cfg.DBName)

	cfg, err = mysqldriver.Config("mysql://u@db.example/app")
	require.NoError(t, err)
	require.Equal(t, "db.example:3306", cfg.Addr, "default port")

	_, err = mysqldriver.Config("postgres://u@db.example/app")
	require.Error(t, err, "not a mysql:// URL")
}

// TestOpenBeginsReadCommittedInOneRoundTrip: a Driver made by
// sqldriver.Open runs its transactions READ COMMITTED (no gap locks: two
// creators of one new stream conflict on the key instead of deadlocking)
// and begins them with START TRANSACTION alone: the level is the session's
// from the moment the connection opens, not sent again before every
// transaction (one round trip per transaction less). Counted by the
// session's Questions (statements the client sent), on one connection.
func TestOpenBeginsReadCommittedInOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.DSN(t, eventfold.MySQL))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	drv.DB().SetMaxOpenConns(1)

	questions := func() int64 {
		var name string
		var n int64
		require.NoError(t, drv.DB().QueryRowContext(ctx, "SHOW SESSION STATUS LIKE 'Questions'").Scan(&name, &n))
		return n
	}
	// MySQL 8 and MariaDB 11.1+ name the level transaction_isolation,
	// older MariaDB tx_isolation only.
	variable := "@@SESSION.transaction_isolation"
	if err := drv.DB().QueryRowContext(ctx, "SELECT "+variable).Err(); err != nil {
		variable = "@@SESSION.tx_isolation"
	}

	before := questions()
	tx, err := drv.Begin(ctx)
	require.NoError(t, err)
	var level string
	require.NoError(t, tx.QueryRowContext(ctx, "SELECT "+variable).Scan(&level))
	require.Equal(t, "READ-COMMITTED", level)
	require.NoError(t, tx.Commit())
	// START TRANSACTION, the SELECT, COMMIT, and the second SHOW STATUS
	// (the counter includes the statement that reads it).
	require.Equal(t, int64(4), questions()-before, "statements sent for a transaction with one SELECT")
}
