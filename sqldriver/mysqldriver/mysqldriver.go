// Package mysqldriver registers MySQL 8 and MariaDB (go-sql-driver/mysql)
// with package sqldriver. Import it in a program that opens mysql:// DSNs;
// a program that does not import it links no MySQL driver:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/mysqldriver"
//
//	d, err := sqldriver.Open(ctx, "mysql://app:pw@db:3306/app")
package mysqldriver

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
	"github.com/eventfold/eventfold/internal/dsnurl"
	"github.com/eventfold/eventfold/sqldriver/internal/registry"
)

func init() {
	registry.Register(registry.Entry{
		Dialect: eventfold.MySQL,
		Ops:     func(db dialect.DB) eventfold.Ops { return mysqlops.New(db) },
		Connector: func(dsn string) (driver.Connector, error) {
			cfg, err := Config(dsn)
			if err != nil {
				return nil, err
			}
			c, err := gomysql.NewConnector(cfg)
			if err != nil {
				return nil, err
			}
			return readCommitted{c}, nil
		},
		ReadCommittedSessions: true,
		MissingDatabase: func(err error) bool {
			var my *gomysql.MySQLError
			return errors.As(err, &my) && my.Number == 1049 // ER_BAD_DB_ERROR
		},
	})
}

// readCommitted makes every connection's sessions READ COMMITTED as it
// opens them, so that a transaction needs no SET TRANSACTION ISOLATION
// LEVEL round trip of its own before its START TRANSACTION (database/sql's
// BeginTx with an isolation level sends both, one round trip each).
type readCommitted struct{ driver.Connector }

const setReadCommitted = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"

func (c readCommitted) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, errors.New("mysql connection cannot execute statements")
	}
	if _, err := ex.ExecContext(ctx, setReadCommitted, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("make the session READ COMMITTED: %w", err)
	}
	return conn, nil
}

// Config turns mysql://user:pass@host:port/db?params into the
// go-sql-driver configuration eventfold uses: UTC both ways, parseTime,
// client-side argument interpolation. mysql://user@/db?socket=PATH
// connects through the server's Unix socket instead of TCP.
func Config(dsn string) (*gomysql.Config, error) {
	if len(dsn) < len("mysql://") || !strings.EqualFold(dsn[:len("mysql://")], "mysql://") {
		return nil, fmt.Errorf("not a mysql:// URL")
	}
	// A password with an unescaped reserved character (mysql://u:p@ss@h,
	// mysql://u:12?pw@h/db, whose password would run into the query that
	// is re-encoded below) is refused, as sqldriver.Open refuses it.
	if err := dsnurl.Check(dsn, eventfold.MySQL); err != nil {
		return nil, err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return nil, fmt.Errorf("not a mysql:// URL")
	}
	// The query string carries go-sql-driver's own options (tls, timeout,
	// charset, ...) as well as system variables: let the driver tell them
	// apart, as it does for its native DSNs. The address goes along so that
	// tls=true verifies the right host name; the credentials are set below,
	// never parsed from text.
	//
	// The query goes re-encoded: go-sql-driver takes the DSN's last '/'
	// for the start of the database name, so a raw '/' in a value
	// (?socket=/run/mysqld/mysqld.sock) made it "invalid DSN"; it
	// unescapes each value itself.
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("the mysql:// URL's query does not parse: %v", err)}
	}
	// Given twice, the first socket was used and the second ignored; given
	// empty, the connection went over TCP to localhost:3306, whatever
	// server listens there: refuse both rather than guess.
	if vs, ok := q["socket"]; ok && (len(vs) != 1 || vs[0] == "") {
		return nil, &eventfold.ValidationError{Field: "dsn", Reason: "the mysql:// URL's socket parameter must be given once, with the path of the server's Unix socket (mysql://user@/db?socket=/run/mysqld/mysqld.sock)"}
	}
	socket := q.Get("socket")
	q.Del("socket")
	if socket != "" && u.Hostname() != "" && u.Hostname() != "localhost" {
		return nil, &eventfold.ValidationError{Field: "dsn", Reason: fmt.Sprintf("the mysql:// URL names both the host %s and the socket %s: a Unix socket is on this machine, leave the host out (mysql://user@/db?socket=PATH)", u.Hostname(), socket)}
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg, err := gomysql.ParseDSN("tcp(" + addr + ")/?" + q.Encode())
	if err != nil {
		return nil, fmt.Errorf("mysql DSN parameters: %v", err)
	}
	if socket != "" {
		// The mysql client's --socket: a server on this machine through
		// its Unix socket (where root often logs in without a password).
		cfg.Net, cfg.Addr = "unix", socket
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.ParseTime = true
	// Interpolate arguments client-side: without it every statement with
	// arguments is prepare + execute + close, three round trips. Safe with
	// the utf8mb4 connection character set the driver uses.
	cfg.InterpolateParams = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Always UTC: NOW(6) in checkpoints and leases must mean the same
	// instant in every session, whatever the DSN asks for.
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg, nil
}
