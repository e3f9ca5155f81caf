package postgres

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
)

// TestIsTransient: the SQLSTATEs after which running the whole transaction
// again may succeed, and some that must not be retried. 57P03 (the server
// is starting up or shutting down: a new connection was refused, nothing
// ran) was not transient, so a Dispatch during a restart failed at once
// where one a moment later succeeds.
func TestIsTransient(t *testing.T) {
	for code, want := range map[string]bool{
		"40001": true,  // serialization failure
		"40P01": true,  // deadlock
		"55P03": true,  // lock not available
		"53300": true,  // too many connections
		"57P03": true,  // cannot connect now
		"57P01": false, // admin shutdown: may come at COMMIT, whose outcome is then unknown
		"23505": false, // unique violation
		"42501": false, // insufficient privilege
		"EF001": false, // wrong expected version
	} {
		err := fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code, Message: "constructed"})
		require.Equal(t, want, IsTransient(err), "SQLSTATE %s", code)
	}
}
