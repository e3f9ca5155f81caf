package eventfold_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/sqldriver"
)

// TestAttackDBAAppendUnderOldSnapshot (PostgreSQL): a DBA's script calls
// eventfold.append_events in a REPEATABLE READ or SERIALIZABLE transaction
// whose snapshot (and xid) predate another append to the same stream. The
// function reads the stream's last position from its snapshot, which does
// not show the other append: the append must still fail (serialization
// failure or EF003), never commit a version whose position is below its
// predecessor's. Both for an existing stream and for one the other
// transaction creates.
func TestAttackDBAAppendUnderOldSnapshot(t *testing.T) {
	ctx := context.Background()
	drv, err := sqldriver.Open(ctx, testdb.DSN(t, eventfold.Postgres))
	require.NoError(t, err)
	t.Cleanup(func() { drv.Close() })
	store := eventfold.New(drv, nil)
	require.NoError(t, store.Migrate(ctx))
	db := drv.DB()
	appendSQL := `SELECT * FROM eventfold.append_events($1, -1, ARRAY[$2::uuid], ARRAY['T'], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])`
	for _, iso := range []string{"REPEATABLE READ", "SERIALIZABLE"} {
		for _, existing := range []bool{true, false} {
			stream := "s-" + uuid.NewString()
			if existing {
				_, err := db.ExecContext(ctx, appendSQL, stream, uuid.NewString())
				require.NoError(t, err)
			}
			conn, err := db.Conn(ctx)
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, "BEGIN ISOLATION LEVEL "+iso)
			require.NoError(t, err)
			// xid and snapshot now, as a script that wrote elsewhere first.
			_, err = conn.ExecContext(ctx, "SELECT pg_current_xact_id(), count(*) FROM eventfold.events")
			require.NoError(t, err)
			_, err = db.ExecContext(ctx, appendSQL, stream, uuid.NewString())
			require.NoError(t, err)
			_, err = conn.ExecContext(ctx, appendSQL, stream, uuid.NewString())
			if err == nil {
				_, err = conn.ExecContext(ctx, "COMMIT")
			} else {
				_, _ = conn.ExecContext(ctx, "ROLLBACK")
			}
			require.NoError(t, conn.Close())
			var pe *pgconn.PgError
			if err != nil {
				require.True(t, errors.As(err, &pe), "%v", err)
				require.Contains(t, []string{"40001", "EF003"}, pe.Code, "%s existing=%v: %v", iso, existing, err)
			}
			evs, rerr := store.ReadStream(ctx, stream, eventfold.ReadStreamOptions{})
			require.NoError(t, rerr)
			for i := 1; i < len(evs); i++ {
				require.Greater(t, evs[i].GlobalPosition, evs[i-1].GlobalPosition, "%s existing=%v: version %d below version %d", iso, existing, evs[i].StreamVersion, evs[i-1].StreamVersion)
			}
			require.Error(t, err, "%s existing=%v: the stale-snapshot append committed (%d events)", iso, existing, len(evs))
		}
	}
}
