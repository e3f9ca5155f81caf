package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// TestCounterLockCost measures what the position counter costs: how long
// an append transaction holds the counter row (from the append returning
// to the commit returning), and how append throughput across different
// streams behaves with 1 and 8 clients, with and without work done in the
// transaction after the append. It only runs with EVENTFOLD_MYSQL_MEASURE=1
// (a few seconds of load) and reports with t.Log.
func TestCounterLockCost(t *testing.T) {
	if os.Getenv("EVENTFOLD_MYSQL_MEASURE") != "1" {
		t.Skip("set EVENTFOLD_MYSQL_MEASURE=1 to measure the counter lock's cost")
	}
	db := migratedDB(t)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	ctx := context.Background()

	// Hold time, one client, nothing else running.
	var appendDur, holdDur time.Duration
	const n = 300
	for i := range n {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		require.NoError(t, err)
		t0 := time.Now()
		_, err = mysqlops.New(tx).Append(ctx, fmt.Sprintf("hold-%d", i), eventfold.NoStream, []eventfold.EventData{newEvent("E")})
		require.NoError(t, err)
		t1 := time.Now()
		require.NoError(t, tx.Commit())
		appendDur += t1.Sub(t0)
		holdDur += time.Since(t1)
	}
	t.Logf("one client: append (CALL) %v, append-return -> commit-return %v (mean of %d)", appendDur/n, holdDur/n, n)

	run := func(clients int, work time.Duration) float64 {
		var count atomic.Int64
		stop := time.Now().Add(1500 * time.Millisecond)
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; time.Now().Before(stop); i++ {
					tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
					if err != nil {
						t.Error(err)
						return
					}
					stream := fmt.Sprintf("tp-%d-%v-%d-%d", clients, work, c, i)
					if _, err := mysqlops.New(tx).Append(ctx, stream, eventfold.NoStream, []eventfold.EventData{newEvent("E")}); err != nil {
						_ = tx.Rollback()
						t.Error(err)
						return
					}
					time.Sleep(work) // e.g. reducers updating read models after the append
					if err := tx.Commit(); err != nil {
						t.Error(err)
						return
					}
					count.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(count.Load()) / 1.5
	}
	for _, work := range []time.Duration{0, 2 * time.Millisecond} {
		one := run(1, work)
		eight := run(8, work)
		t.Logf("work after append %v: 1 client %.0f appends/s, 8 clients %.0f appends/s (different streams)", work, one, eight)
	}
}
