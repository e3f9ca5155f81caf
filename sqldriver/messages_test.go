package sqldriver_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestPostgresDSNAtMySQLPort: a postgres:// DSN pointed at MySQL's port
// failed with pgx's "received unexpected message: %!w(<nil>)" (pgx formats
// a nil error there); it now says that the server there is not PostgreSQL.
func TestPostgresDSNAtMySQLPort(t *testing.T) {
	u, err := url.Parse(testdb.ServerDSN(t, eventfold.MySQL))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = sqldriver.Open(ctx, "postgres://postgres@"+u.Host+"/postgres?sslmode=disable")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "%!")
	require.Contains(t, err.Error(), u.Host+" answered, but not as a PostgreSQL server")
	_, err = pgxdriver.Open(ctx, "postgres://postgres@"+u.Host+"/postgres?sslmode=disable")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "%!")
	require.Contains(t, err.Error(), u.Host+" answered, but not as a PostgreSQL server")
}

// TestLibpqSocketFormsExplained: libpq's ways of naming a Unix socket
// directory, a percent-encoded host in the URL and a key=value string, were
// answered "the user name, password or host cannot be told apart;
// percent-encode reserved characters" (it was percent-encoded), "not a
// valid URL" and "has no scheme"; each now says how to write it.
func TestLibpqSocketFormsExplained(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://app@%2Fvar%2Frun%2Fpostgresql/appdb":                       "postgres://app@/appdb?host=/var/run/postgresql",
		"postgresql://%2Fvar%2Frun%2Fpostgresql:5433/appdb":                    "postgres:///appdb?host=/var/run/postgresql&port=5433",
		"host=/var/run/postgresql dbname=appdb user=app":                       "postgres://app@/appdb?host=/var/run/postgresql",
		"host=%2Fvar%2Frun%2Fpostgresql user=app password=s3cret dbname=appdb": "postgres://app:PASSWORD@/appdb?host=/var/run/postgresql",
		"host=db.example port=5433 dbname=appdb sslmode=require":               "postgres://db.example:5433/appdb?sslmode=require",
	} {
		_, err := sqldriver.Open(context.Background(), dsn)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, dsn)
		require.Contains(t, err.Error(), want, dsn)
		require.NotContains(t, err.Error(), "cannot be told apart", dsn)
		require.NotContains(t, err.Error(), "s3cret", dsn)
	}
}
