package testdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// A shared database serves every test of one test binary: for suites whose
// tests keep apart by their own stream ids and would otherwise pay for a
// database and nine migrations each.
var shared struct {
	mu      sync.Mutex
	inMain  bool
	dsn     map[eventfold.Dialect]string
	err     map[eventfold.Dialect]error
	cleanup []func()
}

// Main runs the package's tests and then drops the databases SharedDSN
// created. Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	for i := len(shared.cleanup) - 1; i >= 0; i-- {
		shared.cleanup[i]()
	}
	return code
}

// SharedDSN returns the DSN of a migrated database of dialect d that every
// test of the test binary shares: created by the first test that asks,
// dropped when Main returns (a test binary whose TestMain is not Main
// fails here, so that no database is left behind). Skips, or fails under
// EVENTFOLD_REQUIRE, like DSN.
func SharedDSN(t testing.TB, d eventfold.Dialect) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("testdb.SharedDSN needs func TestMain(m *testing.M) { os.Exit(testdb.Main(m)) }, which drops the database")
	}
	if dsn, ok := shared.dsn[d]; ok {
		return dsn
	}
	if err, ok := shared.err[d]; ok {
		t.Fatalf("shared %s database: %v", d, err)
	}
	if shared.dsn == nil {
		shared.dsn, shared.err = map[eventfold.Dialect]string{}, map[eventfold.Dialect]error{}
	}
	var dsn string
	if d == eventfold.SQLite {
		dir, err := os.MkdirTemp("", "eftest-shared")
		if err != nil {
			t.Fatal(err)
		}
		shared.cleanup = append(shared.cleanup, func() { _ = os.RemoveAll(dir) })
		dsn = "sqlite://" + filepath.Join(dir, "eventfold.db")
	} else {
		server, reason := serverDSN(d)
		if server == "" {
			unavailable(t, d, reason)
		}
		name := "eftest_" + randomHex(6)
		var err error
		if dsn, err = createDatabase(d, server, name); err != nil {
			unavailable(t, d, err.Error())
		}
		shared.cleanup = append(shared.cleanup, func() {
			if err := dropDatabase(d, server, name); err != nil {
				fmt.Fprintf(os.Stderr, "testdb: drop shared database %s: %v\n", name, err)
			}
		})
	}
	if err := migrate(dsn); err != nil {
		shared.err[d] = err
		t.Fatalf("shared %s database: %v", d, err)
	}
	shared.dsn[d] = dsn
	return dsn
}

func migrate(dsn string) error {
	drv, err := sqldriver.Open(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer drv.Close()
	return eventfold.New(drv, nil).Migrate(context.Background())
}
