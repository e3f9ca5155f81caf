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

// TestMigrateUnderOracleMode (attack3): on MariaDB with sql_mode=ORACLE
// (here from the DSN; a server's global sql_mode does the same) 00001's
// procedures did not parse (1064). MariaDB's DDL commits statement by
// statement, so 00001's tables were already created: every later migrate
// up, in any sql_mode, failed with 1050 "Table 'eventfold_streams' already
// exists", esctl doctor said the schema was not installed, and only
// dropping the tables by hand got out. The migrating session now runs
// without ORACLE (and the modes it brings) and gets its sql_mode back
// afterwards; the procedures keep the mode they were created with, so the
// ORACLE-mode store appends and reads.
func TestMigrateUnderOracleMode(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.MySQL)
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	// One connection: the one goose migrates on is the one checked after.
	drv, err := sqldriver.Open(ctx, dsn+sep+"sql_mode=%27ORACLE%27&max_open_conns=1")
	require.NoError(t, err)
	defer drv.Close()
	store := eventfold.New(drv, nil)
	require.NoError(t, store.Migrate(ctx))
	latest, err := eventfold.LatestSchemaVersion(eventfold.MySQL)
	require.NoError(t, err)
	v, err := store.SchemaVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, latest, v)

	var mode string
	require.NoError(t, drv.DB().QueryRowContext(ctx, `SELECT @@SESSION.sql_mode`).Scan(&mode))
	require.Contains(t, mode, "ORACLE", "the session got its sql_mode back")
	rows, err := drv.DB().QueryContext(ctx, `SELECT ROUTINE_NAME, SQL_MODE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()`)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		var name, m string
		require.NoError(t, rows.Scan(&name, &m))
		require.NotContains(t, m, "ORACLE", "procedure %s", name)
		n++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, n)

	evs, err := store.Append(ctx, "oracle-1", eventfold.NoStream, eventfold.EventData{Type: "T", Data: []byte(`{"a":"b"}`)})
	require.NoError(t, err)
	_, err = store.WaitHead(ctx, evs[0].GlobalPosition)
	require.NoError(t, err)
	all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Len(t, all, 1)
	require.Equal(t, "oracle-1", all[0].StreamID)
	require.NoError(t, store.Migrate(ctx), "migrate up again: nothing to do")
}
