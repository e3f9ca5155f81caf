package mysqldriver_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
