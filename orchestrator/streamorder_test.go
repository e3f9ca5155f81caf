package orchestrator_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// bump is the command of TestPgxStreamOrderUnderContention: write a row
// (which gives the transaction its xid), wait a moment, then append to one
// of a few shared streams.
type bump struct {
	Stream string `json:"stream"`
	N      int    `json:"n"`
}

// TestPgxStreamOrderUnderContention: many writers on few streams through
// the orchestrator, with handlers that write before they append, so that
// transactions take their xids (hence their positions) long before they
// lock the stream. For every stream, position order must equal version
// order (migration 00014: a lower-xid append after a higher-xid one is
// refused with ErrTransient and retried in a new transaction). With and
// without group commit. Run it with -count=50.
func TestPgxStreamOrderUnderContention(t *testing.T) {
	for _, group := range []bool{false, true} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			store := testdb.PgxStore(t)
			ctx := context.Background()
			pool := store.Driver().(*pgxdriver.Driver).Pool()
			_, err := pool.Exec(ctx, `CREATE TABLE scratch (id bigserial PRIMARY KEY, stream text NOT NULL)`)
			require.NoError(t, err)
			cfg := &orchestrator.Config{MaxAttempts: 100, BaseBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
			if group {
				cfg.GroupCommit = &orchestrator.GroupCommitConfig{}
			}
			o := orchestrator.New(store, cfg)
			orchestrator.Handle(o, "Bump", func(ctx context.Context, tx pgx.Tx, c bump) ([]orchestrator.Emit, error) {
				if _, err := tx.Exec(ctx, `INSERT INTO scratch (stream) VALUES ($1)`, c.Stream); err != nil {
					return nil, err
				}
				time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
				return []orchestrator.Emit{{Stream: c.Stream, Expected: eventfold.Any, Type: "Bumped", Data: c}}, nil
			})

			const writers, perWriter = 12, 15
			streams := []string{"shared-1", "shared-2", "shared-3"}
			var wg sync.WaitGroup
			errs := make(chan error, writers*perWriter)
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWriter; i++ {
						c := bump{Stream: streams[(w+i)%len(streams)], N: i}
						if _, err := o.Dispatch(ctx, orchestrator.Command{Name: "Bump", Payload: c}); err != nil {
							errs <- err
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}

			total := 0
			for _, id := range streams {
				evs, err := store.ReadStream(ctx, id, eventfold.ReadStreamOptions{Limit: 10000})
				require.NoError(t, err)
				total += len(evs)
				for i := 1; i < len(evs); i++ {
					require.Greater(t, evs[i].GlobalPosition, evs[i-1].GlobalPosition,
						"stream %s: version %d at position %d sorts before version %d at %d",
						id, evs[i].StreamVersion, evs[i].GlobalPosition, evs[i-1].StreamVersion, evs[i-1].GlobalPosition)
				}
			}
			require.Equal(t, writers*perWriter, total)
		})
	}
}
