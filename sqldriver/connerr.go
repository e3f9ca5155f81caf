package sqldriver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

// explainConnect turns a failed first connection into one statement of
// what is wrong and what to do: a refused connection, a missing database.
// Anything else keeps the driver's words, each line once (pgx repeats its
// error per address and TLS attempt).
func explainConnect(d eventfold.Dialect, dsn string, err error) string {
	e, _ := registry.Lookup(d) // registered: Open got this far
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing answers at %s: is the server running?", hostPort(d, dsn))
	case errors.Is(err, context.DeadlineExceeded):
		// The driver's error does not tell a host that never answered
		// from a server that accepted and then said nothing: a server of
		// another kind (a PostgreSQL server waits for its client to speak
		// first, a MySQL client for the server's greeting). Ask once.
		hp := hostPort(d, dsn)
		if c, derr := net.DialTimeout("tcp", hp, time.Second); derr == nil {
			c.Close()
			return fmt.Sprintf("%s accepted the connection but did not answer as a %s server in time: is that the %s server's port (not another database's), and is it overloaded?", hp, d, d)
		}
		return fmt.Sprintf("no answer from %s in time: is the host reachable (no firewall dropping the packets) and the port right?", hp)
	case e.WrongServer != nil && e.WrongServer(err):
		return fmt.Sprintf("%s answered, but not as a %s server: is that another database's port (MySQL's is 3306, PostgreSQL's 5432)?", hostPort(d, dsn), dialectName[d])
	case e.MissingDatabase != nil && e.MissingDatabase(err):
		return fmt.Sprintf("database %q does not exist on %s: create it (CREATE DATABASE %s) or fix the DSN", dbName(d, dsn), hostPort(d, dsn), dbName(d, dsn))
	}
	var lines []string
	seen := map[string]bool{}
	for _, l := range strings.Split(err.Error(), "\n") {
		if t := strings.TrimSpace(l); !seen[t] {
			seen[t] = true
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

var dialectName = map[eventfold.Dialect]string{eventfold.Postgres: "PostgreSQL", eventfold.MySQL: "MySQL", eventfold.SQLServer: "SQL Server", eventfold.SQLite: "SQLite"}

var defaultPorts = map[eventfold.Dialect]string{eventfold.Postgres: "5432", eventfold.MySQL: "3306", eventfold.SQLServer: "1433"}

func hostPort(d eventfold.Dialect, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "the server"
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		host = "localhost"
	}
	if port == "" {
		port = defaultPorts[d]
	}
	return net.JoinHostPort(host, port)
}

func dbName(d eventfold.Dialect, dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return ""
	}
	if d == eventfold.SQLServer {
		return u.Query().Get("database")
	}
	return strings.TrimPrefix(u.Path, "/")
}
