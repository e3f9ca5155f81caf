package postgres_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dialect/postgres"
)

// TestAppendsToStreamsWhoseLockKeysCollide: appends queue on
// pg_advisory_xact_lock(1162233857, hashtext(stream)), so two streams whose
// hashtext collides share one lock. They must only queue behind each other:
// never refuse, never take each other's versions. "s-4420" and "s-265148"
// collide (checked first). A transaction holding an append to one makes an
// append to the other wait (the shared lock) and then succeed at version 1;
// then the library's appends with exact expected versions on both, and DBA
// calls of eventfold.append_events expecting -1 (any) on another colliding
// pair, run concurrently: none is refused, each stream's versions are 1..n
// in order.
func TestAppendsToStreamsWhoseLockKeysCollide(t *testing.T) {
	t.Parallel()
	db := stdTestDB(t)
	ctx := context.Background()
	const x, y = "s-4420", "s-265148"
	var same bool
	require.NoError(t, db.QueryRowContext(ctx, `SELECT hashtext($1) = hashtext($2)`, x, y).Scan(&same))
	require.True(t, same, "the two stream ids' lock keys collide")
	ops := postgres.NewStd(db)

	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	require.NoError(t, err)
	_, err = postgres.NewStd(tx).Append(ctx, x, eventfold.NoStream, []eventfold.EventData{newEvent("X", `{}`)})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		evs, err := ops.Append(ctx, y, eventfold.NoStream, []eventfold.EventData{newEvent("Y", `{}`)})
		if err == nil && evs[0].StreamVersion != 1 {
			err = fmt.Errorf("version %d", evs[0].StreamVersion)
		}
		done <- err
	}()
	require.Eventually(t, func() bool {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()`).Scan(&n)
		return err == nil && n == 1
	}, 10*time.Second, 20*time.Millisecond, "the append to %s waits for the lock the transaction on %s holds", y, x)
	require.NoError(t, tx.Commit())
	require.NoError(t, <-done)

	// Then concurrently: the library with exact versions on x and on y,
	// and a DBA expecting any version on p and on q, another colliding pair.
	const p, q = "s-165708", "s-195922"
	require.NoError(t, db.QueryRowContext(ctx, `SELECT hashtext($1) = hashtext($2)`, p, q).Scan(&same))
	require.True(t, same, "the lock keys of %s and %s collide", p, q)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, s := range []string{x, y} {
		wg.Go(func() { // version 1 is there
			for v := int64(1); v <= n; v++ {
				if _, err := ops.Append(ctx, s, eventfold.Exact(v), []eventfold.EventData{newEvent("L", `{}`)}); err != nil {
					errs <- fmt.Errorf("library append to %s at %d: %w", s, v, err)
					return
				}
			}
		})
	}
	for _, s := range []string{p, q} {
		wg.Go(func() {
			for range n {
				e := newEvent("D", `{}`)
				_, err := db.ExecContext(ctx, `SELECT * FROM eventfold.append_events($1, -1, ARRAY[$2::uuid], ARRAY['D'], ARRAY['{}'::jsonb], ARRAY['{}'::jsonb])`,
					s, e.ID)
				if err != nil {
					errs <- fmt.Errorf("DBA append to %s: %w", s, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for s, want := range map[string]int{x: n + 1, y: n + 1, p: n, q: n} {
		evs, err := ops.ReadStream(ctx, s, 1, 1000, false)
		require.NoError(t, err)
		require.Len(t, evs, want, s)
		for i, e := range evs {
			require.Equal(t, int64(i+1), e.StreamVersion, s)
		}
	}
}
