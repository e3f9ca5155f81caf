package sqldriver_test

import (
	"context"
	"strings"
	"testing"

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
