package sqldriver_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMaxOpenConnsParameterAttack: max_open_conns given twice (which one
// wins was a guess: the last), without a value (it went to the server:
// MariaDB answered with a syntax error near time_zone, PostgreSQL with an
// unknown setting) or percent-encoded (%35 is 5, as every URL reader
// reads it; it was refused as not a number).
func TestMaxOpenConnsParameterAttack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base := "sqlite://" + filepath.Join(dir, "a.db")
	for _, bad := range []string{
		base + "?max_open_conns=2&max_open_conns=3",
		base + "?max_open_conns",
		base + "?max_open_conns=",
		base + "?max_open_conns=-1",
		base + "?max_open_conns=99999999999999999999",
		base + "?max_open_conns=4%20",
	} {
		_, err := sqldriver.Open(ctx, bad)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, bad)
		require.Contains(t, err.Error(), "max_open_conns", bad)
		_, err = sqldriver.DriverDSN(bad)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, bad)
	}
	drv, err := sqldriver.Open(ctx, base+"?max_open_conns=%35")
	require.NoError(t, err)
	require.Equal(t, 5, drv.DB().Stats().MaxOpenConnections)
	require.NoError(t, drv.Close())
}

// TestDriverDSNDropsPoolCap: a connection opened beside Open's pool from
// the same DSN (esctl tail's and relay's LISTEN connection, the
// benchmark's pgx pools) carried max_open_conns to PostgreSQL, which
// refused it: 'unrecognized configuration parameter "max_open_conns"'.
// DriverDSN gives the DSN without it, the other parameters kept.
func TestDriverDSNDropsPoolCap(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	capped := dsn + sep + "max_open_conns=4&application_name=attack3"
	conn, err := sqldriver.DriverDSN(capped)
	require.NoError(t, err)
	require.NotContains(t, conn, "max_open_conns")
	require.Contains(t, conn, "application_name=attack3")
	c, err := pgx.Connect(context.Background(), conn)
	require.NoError(t, err)
	defer c.Close(context.Background())
	var name string
	require.NoError(t, c.QueryRow(context.Background(), "SHOW application_name").Scan(&name))
	require.Equal(t, "attack3", name)

	// Unchanged without the parameter.
	same, err := sqldriver.DriverDSN(dsn)
	require.NoError(t, err)
	require.Equal(t, dsn, same)
}

// TestUpperCaseSchemeReachesTheNamedDatabase: POSTGRES:// or Postgresql://
// was told to be PostgreSQL, but pgx reads only a lower-case scheme as a
// URL: it parsed the DSN as key=value text, connected to the local Unix
// socket as the operating-system user and sent the whole DSN, password
// included, as the name of a setting ('FATAL: invalid configuration
// parameter name "POSTGRES://postgres:...'), which the server logs. Open
// and DriverDSN now hand the driver the scheme in lower case.
func TestUpperCaseSchemeReachesTheNamedDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t, eventfold.Postgres)
	_, rest, ok := strings.Cut(dsn, "://")
	require.True(t, ok)
	var want string
	for _, scheme := range []string{"POSTGRES", "Postgresql", "PostgreSQL"} {
		drv, err := sqldriver.Open(ctx, scheme+"://"+rest)
		require.NoError(t, err, scheme)
		var got string
		require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT current_database()").Scan(&got))
		require.NoError(t, drv.Close())
		if want == "" {
			require.NoError(t, func() error {
				d, err := sqldriver.Open(ctx, dsn)
				if err != nil {
					return err
				}
				defer d.Close()
				return d.DB().QueryRowContext(ctx, "SELECT current_database()").Scan(&want)
			}())
		}
		require.Equal(t, want, got, scheme)

		conn, err := sqldriver.DriverDSN(scheme + "://" + rest)
		require.NoError(t, err)
		c, err := pgx.Connect(ctx, conn)
		require.NoError(t, err, scheme)
		require.NoError(t, c.QueryRow(ctx, "SELECT current_database()").Scan(&got))
		require.NoError(t, c.Close(ctx))
		require.Equal(t, want, got, scheme)
	}
}
