package mysqldriver_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
	"github.com/eventfold/eventfold/sqldriver/mysqldriver"
)

// TestAttack5UnixSocket: a mysql:// DSN reaches a server on the same
// machine through its Unix socket with ?socket=PATH (the mysql client's
// --socket), the host left empty. Before, no form worked: ?socket=/run/...
// was refused as "invalid DSN: did you forget to escape a param value?"
// (go-sql-driver read the query's last '/' as the start of the database
// name), a percent-encoded path in the host as a password that "cannot be
// told apart", and go-sql-driver's unix(PATH) as the host "unix(".
func TestAttack5UnixSocket(t *testing.T) {
	cfg, err := mysqldriver.Config("mysql://u:p@/app?socket=/run/mysqld/mysqld.sock&timeout=3s")
	require.NoError(t, err)
	require.Equal(t, "unix", cfg.Net)
	require.Equal(t, "/run/mysqld/mysqld.sock", cfg.Addr)
	require.Equal(t, "app", cfg.DBName)
	require.NotContains(t, cfg.Params, "socket", "socket is no system variable")
	cfg, err = mysqldriver.Config("mysql://u@localhost/app?socket=%2Ftmp%2Fm.sock")
	require.NoError(t, err)
	require.Equal(t, "/tmp/m.sock", cfg.Addr)
	_, err = mysqldriver.Config("mysql://u@db.example:3306/app?socket=/tmp/m.sock")
	require.ErrorIs(t, err, eventfold.ErrInvalidInput, "a socket and a remote host")
	require.Contains(t, err.Error(), "socket")
	// Other values may hold a '/' too.
	cfg, err = mysqldriver.Config("mysql://u@db.example/app?sql_mode=%27ANSI%27&init_dir=/a/b")
	require.NoError(t, err)
	require.Equal(t, "/a/b", cfg.Params["init_dir"])

	// The real server's socket, when it is on this machine.
	dsn := testdb.DSN(t, eventfold.MySQL)
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	var sock string
	require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT @@socket").Scan(&sock))
	drv.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Skipf("the server's socket %s is not on this machine: %v", sock, err)
	}
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.Host = ""
	q := u.Query()
	q.Set("socket", sock)
	u.RawQuery = q.Encode()
	viaSocket := u.String()
	drv, err = sqldriver.Open(ctx, viaSocket)
	require.NoError(t, err, viaSocket)
	defer drv.Close()
	var through string
	require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT IF(@@hostname IS NULL, '', SUBSTRING_INDEX(USER(), '@', -1))").Scan(&through))
	require.Equal(t, "localhost", through, "connected through the socket")

	var stdout, stderr bytes.Buffer
	code := esctl.Main(ctx, []string{"--dsn", viaSocket, "append", "--stream", "s-1", "--type", "T", "--data", "{}"}, &stdout, &stderr, esctl.Options{})
	require.Zero(t, code, "%s%s", stdout.String(), stderr.String())
	stdout.Reset()
	code = esctl.Main(ctx, []string{"--dsn", viaSocket, "read", "--stream", "s-1"}, &stdout, &stderr, esctl.Options{})
	require.Zero(t, code, stderr.String())
	require.Contains(t, stdout.String(), `"stream_id":"s-1"`)
}
