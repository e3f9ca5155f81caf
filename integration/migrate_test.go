package integration

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigrations checks, per dialect, that the migrations apply, roll all
// the way down and apply again, and never touch a user's own goose table.
func TestMigrations(t *testing.T) {
	testdb.EachDialect(t, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		drv, err := sqldriver.Open(ctx, testdb.EmptyDSN(t, d))
		if err != nil {
			t.Fatal(err)
		}
		defer drv.Close()
		db := drv.DB()
		// A user's own goose table, with a version eventfold must not see.
		if _, err := db.ExecContext(ctx, "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id BIGINT NOT NULL, is_applied INTEGER NOT NULL)"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO goose_db_version (id, version_id, is_applied) VALUES (1, 20240101, 1)"); err != nil {
			t.Fatal(err)
		}
		store := eventfold.New(drv, nil)
		if err := store.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := store.Migrate(ctx); err != nil {
			t.Fatalf("second migrate is not a no-op: %v", err)
		}
		mustAppend(t, store, "m-1", eventfold.NoStream, ev("Migrated", `{}`))

		p, err := eventfold.NewMigrator(d, db)
		if err != nil {
			t.Fatal(err)
		}
		status, err := p.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(status) == 0 {
			t.Fatal("no migrations found")
		}
		for _, st := range status {
			if st.State != "applied" {
				t.Fatalf("migration %s is %s", st.Source.Path, st.State)
			}
		}
		if _, err := p.DownTo(ctx, 0); err != nil {
			t.Fatalf("down to 0: %v", err)
		}
		if _, err := store.Head(ctx); err == nil {
			t.Fatal("events table still there after migrating down")
		}
		if _, err := p.Up(ctx); err != nil {
			t.Fatalf("up again: %v", err)
		}
		if h, err := store.Head(ctx); err != nil || h != 0 {
			t.Fatalf("after down and up: head %d, %v", h, err)
		}
		var n, v int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*), MAX(version_id) FROM goose_db_version").Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		if n != 1 || v != 20240101 {
			t.Fatalf("user's goose table changed: %d rows, max version %d", n, v)
		}
	})
}

// TestBadDSN checks that an unknown or malformed DSN fails with a clear,
// typed error and never echoes the password.
func TestBadDSN(t *testing.T) {
	ctx := context.Background()
	_, err := sqldriver.Open(ctx, "oracle://scott:tiger@db/orcl")
	if !errors.Is(err, eventfold.ErrUnknownDialect) {
		t.Fatalf("oracle DSN: want ErrUnknownDialect, got %v", err)
	}
	if strings.Contains(err.Error(), "tiger") {
		t.Fatalf("error shows the password: %v", err)
	}
	_, err = sqldriver.Open(ctx, "just-a-file.db")
	if !errors.Is(err, eventfold.ErrInvalidInput) || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("DSN without scheme: %v", err)
	}
	_, err = sqldriver.Open(ctx, "postgres://ada:s3cret-pw@127.0.0.1:1/none?connect_timeout=2")
	if err == nil || strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("unreachable postgres: want an error without the password, got %v", err)
	}
	if got := sqldriver.Redact("mysql://ada:s3cret@host:3306/db"); strings.Contains(got, "s3cret") {
		t.Fatalf("Redact kept the password: %s", got)
	}
}
