package mysql_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver/mysqldriver"
)

// serverConfig returns the server to test on: EVENTFOLD_MYSQL_DSN (eventfold
// URL form, mysql://user:pass@host:port/) as package testdb finds it; the
// test is skipped without one, or fails when EVENTFOLD_REQUIRE names mysql.
// Each test creates a scratch database of its own there, so the account
// needs CREATE and DROP.
func serverConfig(t *testing.T) *mysql.Config {
	t.Helper()
	cfg, err := mysqldriver.Config(testdb.ServerDSN(t, eventfold.MySQL))
	require.NoError(t, err, "parse EVENTFOLD_MYSQL_DSN")
	// What package sqldriver sets: times in UTC both ways.
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	return cfg
}

func openDB(t *testing.T, cfg *mysql.Config) *sql.DB {
	t.Helper()
	conn, err := mysql.NewConnector(cfg)
	require.NoError(t, err)
	db := sql.OpenDB(conn)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// scratchDB creates an empty database with a unique name (in latin1 on
// purpose: the migration must not depend on the database's default
// character set), drops it when the test ends, and returns a pool on it.
func scratchDB(t *testing.T) *sql.DB {
	t.Helper()
	ctx := context.Background()
	cfg := serverConfig(t)
	admin := cfg.Clone()
	admin.DBName = ""
	server := openDB(t, admin)
	if err := server.PingContext(ctx); err != nil {
		t.Fatalf("MySQL/MariaDB at %s is not reachable (%v); start it or set EVENTFOLD_MYSQL_DSN", admin.Addr, err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "eventfold_mysqltest_" + hex.EncodeToString(b[:])
	_, err := server.ExecContext(ctx, "CREATE DATABASE "+name+" CHARACTER SET latin1")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := server.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name)
		if err != nil {
			t.Errorf("drop scratch database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return openDB(t, cfg)
}

// migratedDB is scratchDB with every MySQL migration applied: the append
// tests exercise the procedure as shipped (00005 replaced 00001's).
func migratedDB(t *testing.T) *sql.DB { return latestDB(t) }

// latestDB is scratchDB with every MySQL migration applied.
func latestDB(t *testing.T) *sql.DB {
	t.Helper()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.Up(context.Background())
	require.NoError(t, err, "migrate up")
	return db
}

// begin starts a transaction the way package sqldriver does.
func begin(t *testing.T, db *sql.DB) *sql.Tx {
	t.Helper()
	tx, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

// appendTx appends in a transaction of its own and commits it when the
// append succeeds.
func appendTx(t *testing.T, db *sql.DB, stream string, expected eventfold.ExpectedVersion, events ...eventfold.EventData) ([]eventfold.Event, error) {
	t.Helper()
	tx := begin(t, db)
	out, err := mysqlops.New(tx).Append(context.Background(), stream, expected, events)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	require.NoError(t, tx.Commit())
	return out, nil
}

var seq atomic.Int64

// newEvent returns a valid event of type typ with a fresh UUIDv7 id, as
// Store would pass it on (metadata always an object).
func newEvent(typ string) eventfold.EventData {
	n := seq.Add(1)
	return eventfold.EventData{
		ID:       uuid.Must(uuid.NewV7()).String(),
		Type:     typ,
		Data:     []byte(fmt.Sprintf(`{"n": %d, "text": "äö <&> ✓"}`, n)),
		Metadata: []byte(`{"correlation_id": "c-1"}`),
	}
}
