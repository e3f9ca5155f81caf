package eventfold_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestMigrateUnderOracleModeWritesNothing (attack3, NOT FIXED: needs a
// pre-migration check in the MySQL dialect, a design the lead should
// place): on MariaDB with sql_mode=ORACLE (here from the DSN; a server's
// global sql_mode does the same) 00001's procedures do not parse (1064).
// MariaDB's DDL commits statement by statement, so 00001's tables were
// already created: every later migrate up, in any sql_mode, fails with
// 1050 "Table 'eventfold_streams' already exists", esctl doctor says the
// schema is not installed and points at migrate up, and only dropping the
// tables by hand gets out. Wanted: refused before anything is written,
// naming the sql_mode.
func TestMigrateUnderOracleModeWritesNothing(t *testing.T) {
	t.Skip("attack3 finding, not fixed: needs a MySQL pre-migration check (dialect); see the comment")
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	drv, err := sqldriver.Open(ctx, dsn+sep+"sql_mode=%27ORACLE%27")
	require.NoError(t, err)
	defer drv.Close()
	_, err = eventfold.New(drv, nil).MigrateUpTo(ctx, -1)
	require.Error(t, err)
	require.Contains(t, err.Error(), "sql_mode", "the refusal names the sql_mode")
	var tables int
	require.NoError(t, drv.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'eventfold\_%' AND table_name NOT LIKE 'eventfold\_goose\_version%'`).Scan(&tables))
	require.Zero(t, tables, "a refused migration leaves no eventfold table behind")

	plain, err := sqldriver.Open(ctx, dsn)
	require.NoError(t, err)
	defer plain.Close()
	_, err = eventfold.New(plain, nil).MigrateUpTo(ctx, -1)
	require.NoError(t, err, "migrate up in the ordinary sql_mode goes on")
}
