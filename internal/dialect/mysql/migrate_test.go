package mysql_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

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

// TestUpgradeTo00005KeepsData migrates to 00004, writes to every table
// (multi-byte identifiers included), applies 00005 and checks that every
// value survived byte for byte, that the log goes on at the next position,
// and that the new columns tell apart what the old ones could not.
func TestUpgradeTo00005KeepsData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := scratchDB(t)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 4)
	require.NoError(t, err)

	ops := mysqlops.New(db)
	stream := "konto-äö-✓"
	_, err = ops.Append(ctx, stream, eventfold.NoStream, []eventfold.EventData{newEvent("Eröffnet"), newEvent("Eingezahlt")})
	require.NoError(t, err)
	before, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, before, 2)
	// The 00004 columns, as the orchestrator of that time wrote them (the
	// dialect code of today writes 00007's scope and payload hash too).
	_, err = db.ExecContext(ctx, "INSERT INTO eventfold_commands (command_id, command_type, events, recorded_at) VALUES (?, ?, ?, UTC_TIMESTAMP(6))",
		"zahlung-✓", "Zahlen", `[{"s": "konto-äö-✓", "v": 2}]`)
	require.NoError(t, err)
	require.NoError(t, ops.CreateCheckpoint(ctx, "abrechnung-ü", 2))
	tx := begin(t, db)
	ok, err := mysqlops.New(tx).AcquireLease(ctx, "abrechnung-ü", "host-ß", time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, tx.Commit())

	_, err = p.Up(ctx)
	require.NoError(t, err, "up to 00005 with data")

	after, err := ops.ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, before, after, "the events read back as they were before")
	_, _, refs, found, err := ops.LookupCommand(ctx, "", "zahlung-✓")
	require.NoError(t, err)
	require.True(t, found)
	require.JSONEq(t, `[{"s": "konto-äö-✓", "v": 2}]`, string(refs))
	pos, found, err := ops.GetCheckpoint(ctx, "abrechnung-ü")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, int64(2), pos)
	owner, err := ops.LeaseOwner(ctx, "abrechnung-ü")
	require.NoError(t, err)
	require.Equal(t, "host-ß", owner)
	more, err := ops.Append(ctx, stream, eventfold.Exact(2), []eventfold.EventData{newEvent("Abgehoben")})
	require.NoError(t, err)
	require.Equal(t, int64(3), more[0].GlobalPosition)
	require.Equal(t, int64(3), more[0].StreamVersion)

	runExactIdentifierPairs(t, db)

	// Down cannot keep identifiers apart that differ by a trailing space
	// only: it refuses (duplicate key) rather than merge them.
	_, err = p.DownTo(ctx, 4)
	require.Error(t, err, "down to 00004 with identifiers the old columns cannot tell apart")
}

// TestDownFrom00005 rolls 00005 back on a log without such pairs: the old
// columns and procedure return, and appends go on.
func TestDownFrom00005(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := latestDB(t)
	ops := mysqlops.New(db)
	_, err := ops.Append(ctx, "s-1", eventfold.NoStream, []eventfold.EventData{newEvent("A")})
	require.NoError(t, err)
	p, err := eventfold.NewMigrator(eventfold.MySQL, db)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 4)
	require.NoError(t, err)
	var typ string
	require.NoError(t, db.QueryRow(`SELECT data_type FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'eventfold_streams' AND column_name = 'stream_id'`).Scan(&typ))
	require.Equal(t, "varchar", typ)
	evs, err := ops.Append(ctx, "s-1", eventfold.Exact(1), []eventfold.EventData{newEvent("B")})
	require.NoError(t, err)
	require.Equal(t, int64(2), evs[0].GlobalPosition)
	_, err = p.Up(ctx)
	require.NoError(t, err)
}
