package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

// This test binary imports no testdb (which registers every driver): it
// shows that the one blank import in main.go is all a SQLite program needs.

// TestRunOnSQLite runs the program on a fresh SQLite file.
func TestRunOnSQLite(t *testing.T) {
	var out bytes.Buffer
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "app.db")
	require.NoError(t, run(context.Background(), []string{dsn}, &out))
	require.Contains(t, out.String(), "read back [Pinged]")
}

// TestOtherDialectsNotRegistered: a DSN of a database whose package the
// program did not import is refused before any connection, naming the
// import to add; a DSN of no known dialect is an unknown dialect.
func TestOtherDialectsNotRegistered(t *testing.T) {
	ctx := context.Background()
	for dsn, pkg := range map[string]string{
		"postgres://u:s3cret@127.0.0.1:1/app":           "sqldriver/postgresdriver",
		"mysql://u:s3cret@127.0.0.1:1/app":              "sqldriver/mysqldriver",
		"sqlserver://u:s3cret@127.0.0.1:1?database=app": "sqldriver/mssqldriver",
	} {
		_, err := sqldriver.Open(ctx, dsn)
		require.ErrorIs(t, err, sqldriver.ErrNotRegistered, dsn)
		require.Contains(t, err.Error(), pkg)
		require.NotContains(t, err.Error(), "s3cret")
		_, _, err = sqldriver.Connector(dsn)
		require.ErrorIs(t, err, sqldriver.ErrNotRegistered, dsn)
	}
	_, err := sqldriver.Open(ctx, "oracle://u@db/app")
	require.Error(t, err)
	require.False(t, errors.Is(err, sqldriver.ErrNotRegistered), "an unknown scheme is not a missing import: %v", err)
	_, err = sqldriver.New(nil, "mysql")
	require.ErrorIs(t, err, sqldriver.ErrNotRegistered)
}

// TestBadSQLiteDSNIsInvalidInput: a sqlite:// DSN without a path is
// refused as invalid input (errors.Is ErrInvalidInput), before any file
// is touched.
func TestBadSQLiteDSNIsInvalidInput(t *testing.T) {
	for _, dsn := range []string{"sqlite://", "sqlite://?mode=memory"} {
		_, err := sqldriver.Open(context.Background(), dsn)
		require.ErrorIs(t, err, eventfold.ErrInvalidInput, dsn)
	}
	_, err := sqldriver.New(nil, "oracle")
	require.ErrorIs(t, err, eventfold.ErrUnknownDialect)
}
