package sqldriver_test

import (
	"testing"

	"github.com/microsoft/go-mssqldb/msdsn"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestSQLServerDSNSchemes: every scheme eventfold accepts for SQL Server
// must reach go-mssqldb as a URL. Before the fix, mssql:// and upper-case
// schemes were parsed as ADO strings: host localhost, no user, no database,
// no error.
func TestSQLServerDSNSchemes(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{
		"sqlserver://sa:pw@db.example:1433?database=x",
		"mssql://sa:pw@db.example:1433?database=x",
		"MSSQL://sa:pw@db.example:1433?database=x",
		"SQLServer://sa:pw@db.example:1433?database=x",
	} {
		d, err := sqldriver.DialectOf(dsn)
		require.NoError(t, err, dsn)
		require.Equal(t, eventfold.SQLServer, d, dsn)

		cfg, err := msdsn.Parse(sqldriver.SQLServerDSN(dsn))
		require.NoError(t, err, dsn)
		require.Equal(t, "db.example", cfg.Host, dsn)
		require.EqualValues(t, 1433, cfg.Port, dsn)
		require.Equal(t, "sa", cfg.User, dsn)
		require.Equal(t, "pw", cfg.Password, dsn)
		require.Equal(t, "x", cfg.Database, dsn)

		_, _, err = sqldriver.Connector(dsn)
		require.NoError(t, err, dsn)
	}
	// Other dialects' DSNs pass through untouched.
	for _, dsn := range []string{"postgres://u@h/db", "mysql://u@h/db", "sqlite://x.db", "no scheme"} {
		require.Equal(t, dsn, sqldriver.SQLServerDSN(dsn))
	}
}

// TestSQLServerDSNPathWithPortRefused: go-mssqldb reads the path of a
// sqlserver:// URL as an instance name and ignores it when a port is
// given, so .../app would have used the login's default database (master)
// without a word.
func TestSQLServerDSNPathWithPortRefused(t *testing.T) {
	t.Parallel()
	_, _, err := sqldriver.Connector("sqlserver://sa:s3cret@db.example:1433/app")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.Contains(t, err.Error(), "?database=app")
	require.NotContains(t, err.Error(), "s3cret")
	_, _, err = sqldriver.Connector("mssql://sa:pw@db.example:1433/app")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)

	// A named instance without a port, or a path with the database given,
	// are what go-mssqldb documents.
	for _, dsn := range []string{
		"sqlserver://sa:pw@db.example/SQLEXPRESS?database=app",
		"sqlserver://sa:pw@db.example/SQLEXPRESS",
		"sqlserver://sa:pw@db.example:1433/SQLEXPRESS?database=app",
	} {
		_, _, err := sqldriver.Connector(dsn)
		require.NoError(t, err, dsn)
	}
}
