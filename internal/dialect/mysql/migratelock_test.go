package mysql_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/pressly/goose/v3/lock"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
)

const migrateLockName = `CONCAT('eventfold.migrate.', SHA1(DATABASE()))`

// sameDB opens another pool on db's database, capped at maxOpen.
func sameDB(t *testing.T, db *sql.DB, maxOpen int) *sql.DB {
	t.Helper()
	var name string
	require.NoError(t, db.QueryRow(`SELECT DATABASE()`).Scan(&name))
	cfg := serverConfig(t)
	cfg.DBName = name
	other := openDB(t, cfg)
	other.SetMaxOpenConns(maxOpen)
	return other
}

// applied counts the migrations recorded as applied (goose creates the
// version table, with its version 0, before it takes the lock).
func applied(t *testing.T, db *sql.DB) int {
	t.Helper()
	var tables int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?`, eventfold.MigrationTable).Scan(&tables))
	if tables == 0 {
		return 0
	}
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM `+eventfold.MigrationTable+` WHERE version_id > 0`).Scan(&n))
	return n
}

// upInBackground runs goose Up over pool and returns its result channel.
func upInBackground(t *testing.T, pool *sql.DB) <-chan error {
	t.Helper()
	p, err := eventfold.NewMigrator(eventfold.MySQL, pool)
	require.NoError(t, err)
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	go func() {
		_, err := p.Up(ctx)
		done <- err
	}()
	return done
}

// TestMigrationLockOnOneConnection: the migration lock is GET_LOCK on the
// connection goose migrates on, so a one-connection pool migrates (it hung
// for ever: goose's lock table wanted a second connection), and a migrator
// waits while another session holds the lock: it is seen waiting in
// GET_LOCK, nothing is migrated until the lock is released.
func TestMigrationLockOnOneConnection(t *testing.T) {
	ctx := context.Background()
	admin := scratchDB(t)
	holder, err := admin.Conn(ctx)
	require.NoError(t, err)
	defer holder.Close()
	var got int
	require.NoError(t, holder.QueryRowContext(ctx, `SELECT GET_LOCK(`+migrateLockName+`, 0)`).Scan(&got))
	require.Equal(t, 1, got)

	done := upInBackground(t, sameDB(t, admin, 1))
	for {
		var waiting int
		require.NoError(t, admin.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE 'SELECT GET_LOCK(%'`).Scan(&waiting))
		if waiting > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("migrated while another session held the lock: %v", err)
		default:
		}
	}
	require.Zero(t, applied(t, admin), "nothing is migrated while the lock is held elsewhere")
	_, err = holder.ExecContext(ctx, `DO RELEASE_LOCK(`+migrateLockName+`)`)
	require.NoError(t, err)
	require.NoError(t, <-done)
	require.Positive(t, applied(t, admin))
}

// TestMigrationLockWaitsForTheLockTable: an older eventfold takes only the
// lock table's row (goose's MySQL table locker, heartbeat and all). A
// migrator on a pool that can give a second connection holds GET_LOCK and
// then waits for that row: while it waits (seen holding GET_LOCK in 50
// looks in a row) nothing is migrated; once the row is freed it migrates.
func TestMigrationLockWaitsForTheLockTable(t *testing.T) {
	ctx := context.Background()
	admin := scratchDB(t)
	old, err := lock.NewMySQLTableLocker(lock.WithTableName(eventfold.MigrationTable+"_lock"), lock.WithTableLockID(0x1f3f0d4e))
	require.NoError(t, err)
	require.NoError(t, old.Lock(ctx, admin))
	released := false
	defer func() {
		if !released {
			_ = old.Unlock(ctx, admin)
		}
	}()

	done := upInBackground(t, sameDB(t, admin, 2))
	for seen := 0; seen < 50; {
		var holderID sql.NullInt64
		require.NoError(t, admin.QueryRowContext(ctx, `SELECT IS_USED_LOCK(`+migrateLockName+`)`).Scan(&holderID))
		if holderID.Valid {
			seen++
			require.Zero(t, applied(t, admin), "migrating while an older eventfold holds the lock table's row")
		}
		select {
		case err := <-done:
			t.Fatalf("migrate returned while an older eventfold held the lock: %v", err)
		default:
		}
	}
	require.NoError(t, old.Unlock(ctx, admin))
	released = true
	require.NoError(t, <-done)
	require.Positive(t, applied(t, admin))
}
