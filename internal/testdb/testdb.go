// Package testdb gives each test a fresh database of any dialect:
// SQLite always (a temp file); PostgreSQL, MySQL and SQL Server from a DSN in
// the environment (EVENTFOLD_POSTGRES_DSN, EVENTFOLD_MYSQL_DSN,
// EVENTFOLD_MSSQL_DSN, eventfold URL form), else from a testcontainers
// container when a Docker engine answers (one per dialect and test process;
// images from EVENTFOLD_TEST_POSTGRES_IMAGE, EVENTFOLD_TEST_MYSQL_IMAGE,
// EVENTFOLD_TEST_MSSQL_IMAGE, see container.go; removed when the process
// ends, see reaper.go), else the test is skipped with the reason. EVENTFOLD_REQUIRE=postgres,mysql turns such a skip into a failure,
// so CI cannot go silently green.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
	_ "github.com/eventfold/eventfold/sqldriver/all" // tests run on every dialect
)

// Dialects lists every dialect, SQLite first.
func Dialects() []eventfold.Dialect {
	return []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres, eventfold.MySQL, eventfold.SQLServer}
}

// envVar names the variable holding a server DSN for d.
func envVar(d eventfold.Dialect) string {
	switch d {
	case eventfold.Postgres:
		return "EVENTFOLD_POSTGRES_DSN"
	case eventfold.MySQL:
		return "EVENTFOLD_MYSQL_DSN"
	case eventfold.SQLServer:
		return "EVENTFOLD_MSSQL_DSN"
	}
	return ""
}

// Required reports whether EVENTFOLD_REQUIRE names d.
func Required(d eventfold.Dialect) bool {
	for _, name := range strings.Split(os.Getenv("EVENTFOLD_REQUIRE"), ",") {
		if rd, err := eventfold.ParseDialect(strings.TrimSpace(name)); err == nil && rd == d {
			return true
		}
	}
	return false
}

// unavailable skips the test, or fails it when the dialect is required.
func unavailable(t testing.TB, d eventfold.Dialect, reason string) {
	t.Helper()
	if Required(d) {
		t.Fatalf("%s is required (EVENTFOLD_REQUIRE) but unavailable: %s", d, reason)
	}
	t.Skipf("%s unavailable: %s", d, reason)
}

// Server returns the DSN of the database server for d, or "" and the
// reason there is none; for TestMain functions, which have no *testing.T.
func Server(d eventfold.Dialect) (dsn, reason string) { return serverDSN(d) }

// ServerDSN returns the DSN of the database server for d (eventfold URL
// form), for tests that manage databases themselves. It skips the test, or
// fails it when EVENTFOLD_REQUIRE names d, if there is none.
func ServerDSN(t testing.TB, d eventfold.Dialect) string {
	t.Helper()
	server, reason := serverDSN(d)
	if server == "" {
		unavailable(t, d, reason)
	}
	return server
}

// EmptyDSN returns the DSN of a fresh, empty database of dialect d, dropped
// when the test ends.
func EmptyDSN(t testing.TB, d eventfold.Dialect) string {
	t.Helper()
	if d == eventfold.SQLite {
		return "sqlite://" + filepath.Join(t.TempDir(), "eventfold.db")
	}
	server, reason := serverDSN(d)
	if server == "" {
		unavailable(t, d, reason)
	}
	name := "eftest_" + randomHex(6)
	dsn, err := createDatabase(d, server, name)
	if err != nil {
		unavailable(t, d, err.Error())
	}
	t.Cleanup(func() {
		if err := dropDatabase(d, server, name); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	return dsn
}

// DSN returns the DSN of a fresh database of dialect d with every
// eventfold migration applied.
func DSN(t testing.TB, d eventfold.Dialect) string {
	t.Helper()
	dsn := EmptyDSN(t, d)
	drv, err := sqldriver.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	defer drv.Close()
	if err := eventfold.New(drv, nil).Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s: %v", d, err)
	}
	return dsn
}

// SQLStore returns a Store over database/sql on a fresh, migrated database.
func SQLStore(t testing.TB, d eventfold.Dialect) *eventfold.Store[*sql.Tx] {
	t.Helper()
	dsn := DSN(t, d)
	drv, err := sqldriver.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { drv.Close() })
	return eventfold.New(drv, nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var (
	containerMu  sync.Mutex
	containerDSN = map[eventfold.Dialect]string{}
	containerErr = map[eventfold.Dialect]string{}
)

// serverDSN finds a server for d: the environment first, then a container.
// It returns "" and the reason when there is none.
func serverDSN(d eventfold.Dialect) (string, string) {
	if v := os.Getenv(envVar(d)); v != "" {
		return v, ""
	}
	containerMu.Lock()
	defer containerMu.Unlock()
	if dsn, ok := containerDSN[d]; ok {
		return dsn, ""
	}
	if reason, ok := containerErr[d]; ok {
		return "", reason
	}
	dsn, err := startContainer(d)
	if err != nil {
		containerErr[d] = fmt.Sprintf("%s is not set and no container could be started: %v", envVar(d), err)
		return "", containerErr[d]
	}
	containerDSN[d] = dsn
	return dsn, ""
}

// withDatabase returns server with its database replaced by name.
func withDatabase(d eventfold.Dialect, server, name string) (string, error) {
	u, err := url.Parse(server)
	if err != nil {
		return "", fmt.Errorf("%s: not a URL: %v", envVar(d), err)
	}
	if d == eventfold.SQLServer {
		q := u.Query()
		q.Set("database", name)
		u.RawQuery = q.Encode()
	} else {
		u.Path = "/" + name
	}
	return u.String(), nil
}

// admin opens the server's default database for CREATE/DROP DATABASE.
func admin(d eventfold.Dialect, server string) (*sqldriver.Driver, error) {
	var adminDSN string
	var err error
	switch d {
	case eventfold.Postgres:
		adminDSN, err = withDatabase(d, server, "postgres")
	case eventfold.MySQL:
		adminDSN, err = withDatabase(d, server, "")
	case eventfold.SQLServer:
		adminDSN, err = withDatabase(d, server, "master")
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return sqldriver.Open(ctx, adminDSN)
}

func createDatabase(d eventfold.Dialect, server, name string) (string, error) {
	drv, err := admin(d, server)
	if err != nil {
		return "", err
	}
	defer drv.Close()
	stmt := "CREATE DATABASE " + name
	if d == eventfold.MySQL {
		stmt += " CHARACTER SET utf8mb4"
	}
	if _, err := drv.DB().Exec(stmt); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	if d == eventfold.SQLServer {
		// The setting eventfold's README recommends: without it every
		// plain read waits for any writer of the rows it scans.
		if _, err := drv.DB().Exec("ALTER DATABASE " + name + " SET READ_COMMITTED_SNAPSHOT ON"); err != nil {
			return "", fmt.Errorf("create database %s: READ_COMMITTED_SNAPSHOT ON: %w", name, err)
		}
	}
	return withDatabase(d, server, name)
}

func dropDatabase(d eventfold.Dialect, server, name string) error {
	drv, err := admin(d, server)
	if err != nil {
		return err
	}
	defer drv.Close()
	stmt := "DROP DATABASE IF EXISTS " + name
	switch d {
	case eventfold.Postgres:
		stmt += " WITH (FORCE)"
	case eventfold.SQLServer:
		_, _ = drv.DB().Exec("ALTER DATABASE " + name + " SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
	}
	_, err = drv.DB().Exec(stmt)
	return err
}
