package mysql_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestMigrateUpDownUp applies every MySQL migration with goose, rolls all
// of them back, and applies them again: Down must leave nothing of
// eventfold behind but goose's own version table.
func TestMigrateUpDownUp(t *testing.T) {
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)

	objects := func() []string {
		var names []string
		rows, err := db.QueryContext(ctx, `
			SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()
			UNION ALL
			SELECT routine_name FROM information_schema.routines WHERE routine_schema = DATABASE()
			ORDER BY 1`)
		require.NoError(t, err)
		defer rows.Close()
		for rows.Next() {
			var n string
			require.NoError(t, rows.Scan(&n))
			names = append(names, n)
		}
		require.NoError(t, rows.Err())
		return names
	}

	_, err = p.Up(ctx)
	require.NoError(t, err, "first up")
	require.Subset(t, objects(), []string{"eventfold_append_events", "eventfold_events", "eventfold_goose_version", "eventfold_position", "eventfold_streams"})
	var last int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&last))
	require.Equal(t, int64(0), last, "the migration seeds the counter")

	_, err = p.DownTo(ctx, 0)
	require.NoError(t, err, "down to 0")
	// Only goose's own bookkeeping survives: its version table and the migration lock table.
	require.Equal(t, []string{"eventfold_goose_version", "eventfold_goose_version_lock"}, objects())

	_, err = p.Up(ctx)
	require.NoError(t, err, "second up")
	evs, err := mysqlops.New(db).Append(ctx, "after-reup", eventfold.NoStream, []eventfold.EventData{newEvent("Created")})
	require.NoError(t, err)
	require.Equal(t, int64(1), evs[0].GlobalPosition)
}

// TestSqlcSchemaMatchesMigration keeps sqlc's copy of the tables
// (queries/mysql/schema) equal to the migration that creates them: sqlc
// cannot parse the migration's stored procedure, so it reads the copy.
func TestSqlcSchemaMatchesMigration(t *testing.T) {
	migration, err := os.ReadFile("../../../sql/mysql/00001_events.sql")
	require.NoError(t, err)
	copyText, err := os.ReadFile("../../../queries/mysql/schema/00001_events_tables.sql")
	require.NoError(t, err)

	up := string(migration)
	up = up[:strings.Index(up, "-- +goose Down")]
	createTable := regexp.MustCompile(`(?ms)^CREATE TABLE .*?;$`)
	want := createTable.FindAllString(up, -1)
	got := createTable.FindAllString(string(copyText), -1)
	require.Len(t, want, 3, "the migration creates three tables")
	require.Equal(t, want, got, "queries/mysql/schema/00001_events_tables.sql must repeat the migration's CREATE TABLE statements verbatim")

	// 00005 changes column types next to a procedure: sqlc reads its ALTER TABLEs from a copy.
	migration, err = os.ReadFile("../../../sql/mysql/00005_exact_identifiers_atomic_append.sql")
	require.NoError(t, err)
	copyText, err = os.ReadFile("../../../queries/mysql/schema-00005/00005_exact_identifiers.sql")
	require.NoError(t, err)
	up = string(migration)
	up = up[:strings.Index(up, "-- +goose Down")]
	alterTable := regexp.MustCompile(`(?ms)^ALTER TABLE .*?;$`)
	want = alterTable.FindAllString(up, -1)
	got = alterTable.FindAllString(string(copyText), -1)
	require.Len(t, want, 5, "00005 alters five tables")
	require.Equal(t, want, got, "queries/mysql/schema-00005/00005_exact_identifiers.sql must repeat the migration's ALTER TABLE statements verbatim")
}
