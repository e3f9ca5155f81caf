package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestAttack4TwoProcessesProving: two long-lived pools (two processes) ask
// Head in a loop, so their gate takes race to raise the floor
// (sql/mysql/00019), while a DBA raises it by hand to the highest event
// (SELECT MAX(global_position), then UPDATE ... GREATEST) every 50 ms
// and writers append in transactions held up to 400 ms, a quarter rolled
// back. No Head may reach a position whose COMMIT was sent after that Head
// returned.
func TestAttack4TwoProcessesProving(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	name := dbName(t, db)
	pool := func() *sql.DB {
		cfg := serverConfig(t)
		cfg.DBName = name
		p := openDB(t, cfg)
		p.SetMaxOpenConns(2)
		return p
	}
	type commit struct {
		pos   int64
		start time.Time
	}
	var mu sync.Mutex
	var commits []commit
	var wg sync.WaitGroup
	const writers, txs = 4, 10
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range txs {
				tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
				if err != nil {
					t.Error(err)
					return
				}
				out, err := mysqlops.New(tx).Append(ctx, fmt.Sprintf("tp-%d-%d", w, i%2), eventfold.Any, []eventfold.EventData{newEvent("T")})
				if err != nil {
					_ = tx.Rollback()
					t.Errorf("writer %d: %v", w, err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
				if rand.IntN(4) == 0 {
					require.NoError(t, tx.Rollback())
					continue
				}
				start := time.Now()
				if err := tx.Commit(); err != nil {
					t.Errorf("writer %d commit: %v", w, err)
					return
				}
				mu.Lock()
				commits = append(commits, commit{out[0].GlobalPosition, start})
				mu.Unlock()
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	type seen struct {
		at time.Time
		h  int64
	}
	var smu sync.Mutex
	var heads []seen
	var bg sync.WaitGroup
	for range 2 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			ops := mysqlops.New(pool())
			for {
				select {
				case <-done:
					return
				default:
				}
				h, err := ops.Head(ctx)
				if err != nil {
					t.Errorf("head: %v", err)
					return
				}
				smu.Lock()
				heads = append(heads, seen{time.Now(), h})
				smu.Unlock()
				time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
			}
		}()
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		dba := pool()
		for {
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
			// Read first, then raise: one UPDATE with the MAX as a
			// subquery reads eventfold_events with next-key locks
			// while it waits for the gate, and deadlocks with appends
			// (seen: appends failed with 1213 when the DBA ran it).
			var top int64
			err := dba.QueryRowContext(ctx, `SELECT COALESCE(MAX(global_position), 0) FROM eventfold_events`).Scan(&top)
			if err == nil {
				_, err = dba.ExecContext(ctx, `UPDATE eventfold_position SET last_position = GREATEST(last_position, ?) WHERE id = 1`, top)
			}
			if err != nil {
				t.Errorf("dba: %v", err)
				return
			}
		}
	}()
	bg.Wait()
	t.Logf("%d heads, %d commits", len(heads), len(commits))
	require.NotEmpty(t, commits)
	require.NotEmpty(t, heads)
	bad := 0
	for _, c := range commits {
		for _, s := range heads {
			if c.pos <= s.h && c.start.After(s.at) {
				bad++
				if bad <= 5 {
					t.Errorf("position %d committed (COMMIT sent %v) after a Head %d returned at %v", c.pos, c.start.Format(time.StampMicro), s.h, s.at.Format(time.StampMicro))
				}
			}
		}
	}
	h, err := mysqlops.New(pool()).Head(ctx)
	require.NoError(t, err)
	evs, err := mysqlops.New(db).ReadAll(ctx, 0, 1000)
	require.NoError(t, err)
	require.Len(t, evs, len(commits))
	require.Equal(t, evs[len(evs)-1].GlobalPosition, h)
}
