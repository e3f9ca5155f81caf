package pgxdriver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/pgxdriver"
)

// testDSN is a scratch database every test shares (its own streams keep
// tests apart; tests that need a database to themselves make one). The
// server comes from EVENTFOLD_POSTGRES_DSN (or a container) as package
// testdb finds it.
var testDSN string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	server, reason := testdb.Server(eventfold.Postgres)
	if server == "" {
		if testdb.Required(eventfold.Postgres) {
			fmt.Fprintf(os.Stderr, "pgxdriver tests: postgres is required (EVENTFOLD_REQUIRE) but unavailable: %s\n", reason)
			return 1
		}
		fmt.Printf("pgxdriver tests skipped: postgres unavailable: %s\n", reason)
		return 0
	}
	dsn, drop, err := createDatabase(context.Background(), server, "pg_helper_pgxdriver_"+randomHex(4))
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgxdriver tests: create scratch database: %v\n", err)
		return 1
	}
	defer drop()
	testDSN = dsn
	return m.Run()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withDatabase returns dsn pointing at database name instead.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", err
		}
		u.Path = "/" + name
		return u.String(), nil
	}
	// key=value form: a later key overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

// createDatabase creates database name on the server of serverDSN and
// returns its DSN and a function that drops it.
func createDatabase(ctx context.Context, serverDSN, name string) (string, func(), error) {
	conn, err := pgx.Connect(ctx, serverDSN)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, err
	}
	dsn, err := withDatabase(serverDSN, name)
	if err != nil {
		return "", nil, err
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, serverDSN)
		if err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "drop database %s: %v\n", name, err)
		}
	}
	return dsn, drop, nil
}

var (
	sharedOnce  sync.Once
	sharedStore *eventfold.Store[pgx.Tx]
	sharedPool  *pgxpool.Pool
	sharedErr   error
)

// store returns a Store on the shared, migrated test database.
func store(t *testing.T) *eventfold.Store[pgx.Tx] {
	t.Helper()
	sharedOnce.Do(func() {
		ctx := context.Background()
		sharedPool, sharedErr = pgxpool.New(ctx, testDSN)
		if sharedErr != nil {
			return
		}
		sharedStore = eventfold.New(pgxdriver.New(sharedPool), nil)
		sharedErr = migrateLocked(ctx, sharedPool, sharedStore)
	})
	require.NoError(t, sharedErr)
	return sharedStore
}

// migrateLocked migrates under an advisory lock, so that several test
// packages sharing EVENTFOLD_POSTGRES_DSN do not race goose.
func migrateLocked(ctx context.Context, pool *pgxpool.Pool, s *eventfold.Store[pgx.Tx]) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	const key = 0x6576656e74 // "event"
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", key); err != nil {
		return err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key) }()
	return s.Migrate(ctx)
}

// streamID returns a stream id no other test (or run) uses.
func streamID(t *testing.T, suffix string) string {
	return fmt.Sprintf("%s-%s-%s", t.Name(), suffix, randomHex(4))
}

func ev(typ, data string) eventfold.EventData {
	return eventfold.EventData{Type: typ, Data: []byte(data)}
}

// readAllUntil reads from position from until done accepts the events of
// the given streams, or fails the test after a while. Other sessions on the
// cluster (other test packages) may hold the snapshot horizon back briefly.
func readAllUntil(t *testing.T, s *eventfold.Store[pgx.Tx], from int64, streams []string, done func([]eventfold.Event) bool) []eventfold.Event {
	t.Helper()
	want := map[string]bool{}
	for _, id := range streams {
		want[id] = true
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, err := s.ReadAll(context.Background(), eventfold.ReadAllOptions{From: from, Limit: 10000})
		require.NoError(t, err)
		var mine []eventfold.Event
		for _, e := range all {
			if want[e.StreamID] {
				mine = append(mine, e)
			}
		}
		if done(mine) {
			return mine
		}
		if time.Now().After(deadline) {
			t.Fatalf("ReadAll from %d: condition not met within the deadline; got %d events of %v", from, len(mine), streams)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sqlState returns the SQLSTATE of err, if it is a PostgreSQL error.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}
