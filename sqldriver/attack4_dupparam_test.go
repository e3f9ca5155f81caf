package sqldriver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttack4DuplicateSSLModeRefused: max_open_conns given twice is refused
// as ambiguous ("the last won silently"), but any other parameter given
// twice is passed on and the last one is used without a word. With
// sslmode, that is a security setting: a DSN that says sslmode=require and
// gets "&sslmode=disable" appended (a config layer, a copied example)
// connects in the clear. Seen here (server ssl=on): pg_stat_ssl.ssl is
// false for ?sslmode=require&sslmode=disable, true for
// ?sslmode=disable&sslmode=require; both are accepted.
// Finding (attack4), fixed: a parameter given twice is refused, as
// max_open_conns is, before any connection (so whether the server takes
// TLS does not matter: the test containers' PostgreSQL does not).
func TestAttack4DuplicateSSLModeRefused(t *testing.T) {
	testdb.EachDialectOf(t, []eventfold.Dialect{eventfold.Postgres}, func(t *testing.T, d eventfold.Dialect) {
		ctx := context.Background()
		base := testdb.DSN(t, d)
		base = strings.ReplaceAll(base, "sslmode=disable&", "")
		base = strings.ReplaceAll(base, "&sslmode=disable", "")
		base = strings.ReplaceAll(base, "?sslmode=disable", "")
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		ssl := func(dsn string) (bool, error) {
			drv, err := sqldriver.Open(ctx, dsn)
			if err != nil {
				return false, err
			}
			defer drv.Close()
			var on bool
			err = drv.DB().QueryRowContext(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&on)
			return on, err
		}
		for _, q := range []string{"sslmode=disable&sslmode=require", "sslmode=require&sslmode=disable"} {
			on, err := ssl(base + sep + q)
			t.Logf("?%s: ssl %v, err %v", q, on, err)
			require.ErrorIs(t, err, eventfold.ErrInvalidInput, "?%s (session ssl %v)", q, on)
		}
	})
}
