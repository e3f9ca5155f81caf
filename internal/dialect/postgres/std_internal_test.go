package postgres

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/stretchr/testify/require"
)

// TestStdDBAdapter checks the parts of the database/sql adapter that the
// generated code relies on beyond Next/Scan: affected-row counts (":execrows"
// queries), pgx.ErrNoRows, and errors from Query.
func TestStdDBAdapter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Package testdb cannot be imported here (it imports this package), so
	// the same rule by hand: the server from the environment, else skip —
	// or fail when EVENTFOLD_REQUIRE names postgres.
	dsn := os.Getenv("EVENTFOLD_POSTGRES_DSN")
	if dsn == "" {
		if strings.Contains(os.Getenv("EVENTFOLD_REQUIRE"), "postgres") {
			t.Fatal("EVENTFOLD_REQUIRE names postgres but EVENTFOLD_POSTGRES_DSN is not set")
		}
		t.Skip("postgres unavailable: EVENTFOLD_POSTGRES_DSN is not set")
	}
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	conn, err := db.Conn(ctx) // temp tables live on one connection
	require.NoError(t, err)
	defer conn.Close()
	s := stdDB{db: conn}

	_, err = s.Exec(ctx, "CREATE TEMP TABLE adapter_probe (n int)")
	require.NoError(t, err)
	tag, err := s.Exec(ctx, "INSERT INTO adapter_probe SELECT generate_series(1, $1::int)", 3)
	require.NoError(t, err)
	require.Equal(t, int64(3), tag.RowsAffected())

	rows, err := s.Query(ctx, "SELECT n, n::text AS s FROM adapter_probe ORDER BY 1")
	require.NoError(t, err)
	require.Equal(t, "n", rows.FieldDescriptions()[0].Name)
	var got []any
	for rows.Next() {
		vals, err := rows.Values()
		require.NoError(t, err)
		got = append(got, vals[1])
	}
	rows.Close()
	require.NoError(t, rows.Err())
	require.Equal(t, []any{"1", "2", "3"}, got)

	var n int
	err = s.QueryRow(ctx, "SELECT n FROM adapter_probe WHERE n > 10").Scan(&n)
	require.True(t, errors.Is(err, pgx.ErrNoRows), "got %v", err)
	require.True(t, isNoRows(err))

	rows, err = s.Query(ctx, "SELECT * FROM no_such_table")
	require.Error(t, err)
	require.False(t, rows.Next(), "failed rows are usable and empty")
	rows.Close()
	require.Error(t, rows.Err())
}
