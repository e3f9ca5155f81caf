package bench

import (
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// TestWithPoolSizeDropsMaxOpenConns: the benchmark's pgx pools were opened
// from the eventfold DSN with sqldriver's max_open_conns still in it, which
// pgx sends to PostgreSQL as a setting and PostgreSQL refuses
// (unrecognized configuration parameter): esctl bench on such a DSN could
// not connect its raw and pgx modes.
func TestWithPoolSizeDropsMaxOpenConns(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(withPoolSize("postgres://u@127.0.0.1:5432/db?sslmode=disable&max_open_conns=8", 5))
	require.NoError(t, err)
	require.Equal(t, int32(5), cfg.MaxConns)
	require.NotContains(t, cfg.ConnConfig.RuntimeParams, "max_open_conns")
}
