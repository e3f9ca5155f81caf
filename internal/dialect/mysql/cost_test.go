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

// TestProcedure00005Cost compares append throughput (8 clients, one event
// per transaction, expected version any, existing streams) through the
// procedure of 00001 and that of 00005 (which inserts the stream row
// before it reads it FOR UPDATE), alternating rounds in one run, and the
// read rate of ReadAll. Runs with EVENTFOLD_MYSQL_MEASURE=1.
func TestProcedure00005Cost(t *testing.T) {
	if os.Getenv("EVENTFOLD_MYSQL_MEASURE") != "1" {
		t.Skip("set EVENTFOLD_MYSQL_MEASURE=1 to measure")
	}
	ctx := context.Background()
	open := func(version int64) *sql.DB {
		db := scratchDB(t)
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
		p, err := eventfold.NewMigrator(eventfold.MySQL, db)
		require.NoError(t, err)
		_, err = p.UpTo(ctx, version)
		require.NoError(t, err)
		for s := range 16 {
			_, err := appendTx(t, db, fmt.Sprintf("s-%d", s), eventfold.Any, newEvent("Seed"))
			require.NoError(t, err)
		}
		return db
	}
	dbs := map[string]*sql.DB{"00001": open(4), "00005": open(5)}
	rate := func(db *sql.DB) float64 {
		var n atomic.Int64
		var wg sync.WaitGroup
		stop := time.Now().Add(2 * time.Second)
		for c := range 8 {
			wg.Go(func() {
				for i := 0; time.Now().Before(stop); i++ {
					if _, err := appendTx(t, db, fmt.Sprintf("s-%d", (c+i)%16), eventfold.Any, newEvent("Tick")); err == nil {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / 2
	}
	sums := map[string]float64{}
	for round := range 3 {
		for _, v := range []string{"00001", "00005"} {
			r := rate(dbs[v])
			sums[v] += r
			t.Logf("round %d, procedure of %s: %.0f appends/s", round, v, r)
		}
	}
	t.Logf("mean: 00001 %.0f/s, 00005 %.0f/s (ratio %.2f)", sums["00001"]/3, sums["00005"]/3, sums["00005"]/sums["00001"])

	ops := mysqlops.New(dbs["00005"])
	t0 := time.Now()
	reads := 0
	for time.Since(t0) < 2*time.Second {
		_, err := ops.ReadAll(ctx, 1, 100)
		require.NoError(t, err)
		reads++
	}
	t.Logf("ReadAll of 100 events, no gaps: %.0f reads/s", float64(reads)/time.Since(t0).Seconds())
}
