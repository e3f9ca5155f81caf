package sqldriver_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack5SilentServer: a mysql:// DSN pointed at a server that
// accepts the connection and says nothing (a PostgreSQL server waits for
// its client to speak first, and a MySQL client waits for the server's
// greeting). Open said only "context deadline exceeded", after 15 s. It
// now says that the server did not answer and to check the port.
func TestAttack5SilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = sqldriver.Open(ctx, "mysql://root:S3cretPW@127.0.0.1:"+port+"/db")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "S3cretPW")
	require.Contains(t, err.Error(), "127.0.0.1:"+port+" accepted the connection but did not answer as a mysql server")
}
