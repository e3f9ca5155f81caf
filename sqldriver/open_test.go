package sqldriver_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
		got := sqldriver.Redact(dsn)
		if strings.Contains(got, "s3cret") || strings.Contains(got, "cret") {
			t.Errorf("Redact(%q) = %q: password still there", dsn, got)
		}
		_, err := sqldriver.DialectOf(dsn)
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("DialectOf(%q): error shows the password: %v", dsn, err)
		}
	}
	for _, dsn := range []string{
		"sqlite://./data/app.db",
		"postgres://u@db:5432/app?sslmode=disable",
	} {
		if got := sqldriver.Redact(dsn); got != dsn {
			t.Errorf("Redact(%q) = %q, want it unchanged", dsn, got)
		}
	}
}

// TestMySQLConfigDriverParams: go-sql-driver options in a mysql:// URL
// configure the driver (they are not system variables), and the session
// time zone stays UTC whatever the URL says.
func TestMySQLConfigDriverParams(t *testing.T) {
	cfg, err := sqldriver.MySQLConfig("mysql://u:p@db.example:3307/app?tls=skip-verify&timeout=7s&parseTime=false&time_zone=%27-05:00%27&sql_mode=%27ANSI%27")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS == nil || cfg.Timeout != 7*time.Second {
		t.Errorf("tls/timeout not applied: TLS %v, timeout %v", cfg.TLS, cfg.Timeout)
	}
	if !cfg.ParseTime || cfg.Loc != time.UTC || cfg.Params["time_zone"] != "'+00:00'" {
		t.Errorf("parseTime %v, loc %v, time_zone %q: want true, UTC, '+00:00'", cfg.ParseTime, cfg.Loc, cfg.Params["time_zone"])
	}
	if cfg.Params["sql_mode"] != "'ANSI'" {
		t.Errorf("system variable sql_mode = %q, want 'ANSI'", cfg.Params["sql_mode"])
	}
	for _, k := range []string{"tls", "timeout", "parseTime"} {
		if _, ok := cfg.Params[k]; ok {
			t.Errorf("driver option %s was passed on as a system variable", k)
		}
	}
	if cfg.Addr != "db.example:3307" || cfg.User != "u" || cfg.Passwd != "p" || cfg.DBName != "app" {
		t.Errorf("addr %q user %q db %q", cfg.Addr, cfg.User, cfg.DBName)
	}
	if cfg, err := sqldriver.MySQLConfig("mysql://u@db.example/app"); err != nil || cfg.Addr != "db.example:3306" {
		t.Errorf("default port: %v, %v", cfg, err)
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
	if err != nil {
		t.Fatalf("open with driver options: %v", err)
	}
	defer d.Close()
	var tz string
	if err := d.DB().QueryRow("SELECT @@session.time_zone").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	if tz != "+00:00" {
		t.Errorf("session time zone %q, want +00:00", tz)
	}
}
