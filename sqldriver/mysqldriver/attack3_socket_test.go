package mysqldriver_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver/mysqldriver"
)

// TestSocketGivenTwiceOrEmptyRefused: ?socket=A&socket=B connected through
// A and ignored B without a word; ?socket= (empty) connected over TCP to
// localhost:3306, whatever server listened there. Both are refused now.
func TestSocketGivenTwiceOrEmptyRefused(t *testing.T) {
	for _, dsn := range []string{
		"mysql://u@/app?socket=/run/mysqld/mysqld.sock&socket=/tmp/other.sock",
		"mysql://u@/app?socket=",
		"mysql://u@/app?socket",
		"mysql://u@localhost/app?socket=&timeout=3s",
	} {
		_, err := mysqldriver.Config(dsn)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, dsn)
		require.Contains(t, err.Error(), "socket", dsn)
	}
	cfg, err := mysqldriver.Config("mysql://u@localhost/app?socket=/run/mysqld/mysqld.sock")
	require.NoError(t, err)
	require.Equal(t, "unix", cfg.Net)
	require.Equal(t, "/run/mysqld/mysqld.sock", cfg.Addr)
}
