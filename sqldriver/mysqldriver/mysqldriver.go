// Package mysqldriver registers MySQL 8 and MariaDB (go-sql-driver/mysql)
// with package sqldriver. Import it in a program that opens mysql:// DSNs;
// a program that does not import it links no MySQL driver:
//
//	import _ "github.com/eventfold/eventfold/sqldriver/mysqldriver"
//
//	d, err := sqldriver.Open(ctx, "mysql://app:pw@db:3306/app")
package mysqldriver

import (
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
			return gomysql.NewConnector(cfg)
		},
		MissingDatabase: func(err error) bool {
			var my *gomysql.MySQLError
			return errors.As(err, &my) && my.Number == 1049 // ER_BAD_DB_ERROR
		},
	})
}

// Config turns mysql://user:pass@host:port/db?params into the
// go-sql-driver configuration eventfold uses: UTC both ways, parseTime,
// client-side argument interpolation.
func Config(dsn string) (*gomysql.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "mysql" {
		return nil, fmt.Errorf("not a mysql:// URL")
	}
	// The query string carries go-sql-driver's own options (tls, timeout,
	// charset, ...) as well as system variables: let the driver tell them
	// apart, as it does for its native DSNs. The address goes along so that
	// tls=true verifies the right host name; the credentials are set below,
	// never parsed from text.
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg, err := gomysql.ParseDSN("tcp(" + addr + ")/?" + u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("mysql DSN parameters: %v", err)
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
