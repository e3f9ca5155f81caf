package sqldriver_test

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestRedactHidesPasswords covers every DSN form a password can hide in,
// including the ones Open refuses (no scheme): their error quotes the DSN.
func TestRedactHidesPasswords(t *testing.T) {
	for _, dsn := range []string{
		"postgres://u:s3cret@db:5432/app?sslmode=disable",
		"mysql://u:s3cret@db:3306/app",
		"sqlserver://u:s3cret@db:1433?database=app",
		"sqlserver://db:1433?database=app&user+id=u&password=s3cret",
		"postgres://u@db/app?password=s3cret",
		"u:s3cret@tcp(db:3306)/app?parseTime=true",
		"host=db user=u password=s3cret dbname=app",
		"host=db user=u password='s3 cret' dbname=app",
		"server=db;user id=u;Password=s3cret;database=app",
	} {
		require.NotContains(t, sqldriver.Redact(dsn), "cret", "Redact(%q): password still there", dsn)
		if _, err := sqldriver.DialectOf(dsn); err != nil {
			require.NotContains(t, err.Error(), "s3cret", "DialectOf(%q): error shows the password", dsn)
		}
	}
	for _, dsn := range []string{
		"sqlite://./data/app.db",
		"postgres://u@db:5432/app?sslmode=disable",
	} {
		require.Equal(t, dsn, sqldriver.Redact(dsn), "nothing to redact")
	}
}

// TestOpenMySQLWithDriverParams opens a real server with driver options in
// the URL (the goose CLI's DSN carries parseTime=true) and checks the
// session runs in UTC.
func TestOpenMySQLWithDriverParams(t *testing.T) {
	server := testdb.ServerDSN(t, eventfold.MySQL)
	sep := "?"
	if strings.Contains(server, "?") {
		sep = "&"
	}
	d, err := sqldriver.Open(context.Background(), server+sep+"parseTime=true&timeout=5s&time_zone=%27-05:00%27")
	require.NoError(t, err, "open with driver options")
	defer d.Close()
	var tz string
	require.NoError(t, d.DB().QueryRow("SELECT @@session.time_zone").Scan(&tz))
	require.Equal(t, "+00:00", tz, "the session runs in UTC whatever the URL says")
}

// TestOpenKeepsConcurrentConnections: a pool made by Open keeps the
// connections a burst of concurrent transactions opened, instead of
// database/sql's default of 2 idle ones (an application with 10 writers, or
// a Notifier sharing the writers' pool, opened and closed a backend per
// transaction).
func TestOpenKeepsConcurrentConnections(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.Postgres, eventfold.MySQL, eventfold.SQLite} {
		t.Run(string(d), func(t *testing.T) {
			dsn := testdb.DSN(t, d)
			drv, err := sqldriver.Open(context.Background(), dsn)
			require.NoError(t, err)
			defer drv.Close()
			const n = 10
			ctx := context.Background()
			var conns []*sql.Conn
			for range n {
				c, err := drv.DB().Conn(ctx)
				require.NoError(t, err)
				conns = append(conns, c)
			}
			for _, c := range conns {
				require.NoError(t, c.Close())
			}
			st := drv.DB().Stats()
			require.Equal(t, n, st.Idle, "connections kept idle after a burst of %d (stats %+v)", n, st)
			// A second burst reuses them: no new connection.
			for range n {
				c, err := drv.DB().Conn(ctx)
				require.NoError(t, err)
				defer c.Close()
			}
			require.Equal(t, n, drv.DB().Stats().OpenConnections, "the second burst opened no connection")
		})
	}
}

// TestOpenCapsOpenConnections: Open's pool had no cap on open connections,
// so a burst of concurrent transactions opened one connection each. It
// opens at most DefaultMaxOpenConns, or the DSN's max_open_conns (removed
// before the driver sees the DSN: PostgreSQL would refuse it as an unknown
// parameter); beyond the cap transactions wait. A bad value is refused.
func TestOpenCapsOpenConnections(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.DSN(t, eventfold.Postgres)
	def, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	require.Equal(t, sqldriver.DefaultMaxOpenConns, def.DB().Stats().MaxOpenConnections)
	def.Close()

	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	drv, err := sqldriver.Open(ctx, dsn+sep+"max_open_conns=3")
	require.NoError(t, err)
	defer drv.Close()
	db := drv.DB()
	require.Equal(t, 3, db.Stats().MaxOpenConnections)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			tx, err := db.BeginTx(ctx, nil)
			if !assert.NoError(t, err) {
				return
			}
			defer tx.Rollback() //nolint:errcheck
			_, err = tx.ExecContext(ctx, `SELECT pg_sleep(0.05)`)
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	st := db.Stats()
	require.LessOrEqual(t, st.OpenConnections, 3, "%+v", st)
	require.Positive(t, st.WaitCount, "10 transactions on 3 connections waited: %+v", st)

	_, err = sqldriver.Open(ctx, dsn+sep+"max_open_conns=lots")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.Contains(t, err.Error(), "max_open_conns")
}

// TestDriverDSN: DriverDSN drops max_open_conns (Open's, not the
// database's) and keeps every other parameter; a bad value is refused as
// Open refuses it.
func TestDriverDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h/db?sslmode=disable&max_open_conns=3":    "postgres://u@h/db?sslmode=disable",
		"postgres://u@h/db?max_open_conns=1":                    "postgres://u@h/db",
		"mysql://u@h/db?max_open_conns=2&parseTime=true&x=y":    "mysql://u@h/db?parseTime=true&x=y",
		"sqlite:///tmp/x.db":                                    "sqlite:///tmp/x.db",
		"postgres://u@h/db?application_name=max_open_conns_app": "postgres://u@h/db?application_name=max_open_conns_app",
	} {
		got, err := sqldriver.DriverDSN(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	_, err := sqldriver.DriverDSN("postgres://u@h/db?max_open_conns=-1")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput)
	require.Contains(t, err.Error(), "max_open_conns")
}
