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

// TestAttackLongAppendsWithPollers: the bounded gate wait under an
// outsider's load. Writers commit and roll back at random, and every few
// transactions one stays open 1.2-2.5 s (longer than the gate's 1 s wait)
// after its append. Meanwhile three followers, each on a pool of its own
// (three processes: their cooldowns and settled watermarks are their
// own), read the log from "last position + 1", a Head poller on a
// fourth pool asks Head every 10 ms (Store.WaitHead), and every 20 ms a
// new pool (a new process) asks Head once. Checked: no follower sees an
// event twice, goes back, or passes a position that commits later (at the
// end each saw exactly the committed events); the poller's Head never
// goes back; no Head, the new pools' included, ever claims a position
// complete before its append began to commit; appends keep flowing (every
// writer finishes); every follower catches up once the writers end.
func TestAttackLongAppendsWithPollers(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	var name string
	require.NoError(t, db.QueryRowContext(ctx, `SELECT DATABASE()`).Scan(&name))
	pool := func(maxOpen int) *sql.DB {
		cfg := serverConfig(t)
		cfg.DBName = name
		p := openDB(t, cfg)
		p.SetMaxOpenConns(maxOpen)
		return p
	}
	const writers, txsPerWriter = 5, 14

	type commit struct {
		pos   int64
		start time.Time // COMMIT was sent after this
	}
	var mu sync.Mutex
	committed := map[string]commit{}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range txsPerWriter {
				tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
				if err != nil {
					t.Error(err)
					return
				}
				evs := make([]eventfold.EventData, 1+rand.IntN(3))
				for j := range evs {
					evs[j] = newEvent("Tick")
				}
				stream := fmt.Sprintf("w%d-s%d", w, rand.IntN(3))
				out, err := mysqlops.New(tx).Append(ctx, stream, eventfold.Any, evs)
				if err != nil {
					_ = tx.Rollback()
					t.Errorf("writer %d tx %d: %v", w, i, err)
					return
				}
				if i%5 == 2 {
					time.Sleep(1200*time.Millisecond + time.Duration(rand.IntN(1300))*time.Millisecond)
				} else {
					time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
				}
				if rand.IntN(4) == 0 {
					if err := tx.Rollback(); err != nil {
						t.Errorf("writer %d rollback: %v", w, err)
						return
					}
					continue
				}
				start := time.Now()
				if err := tx.Commit(); err != nil {
					t.Errorf("writer %d commit: %v", w, err)
					return
				}
				mu.Lock()
				for k, e := range evs {
					committed[e.ID] = commit{pos: out[k].GlobalPosition, start: start}
				}
				mu.Unlock()
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	type headSeen struct {
		at time.Time
		h  int64
	}
	var heads []headSeen
	headDone := make(chan struct{})
	go func() {
		defer close(headDone)
		ops := mysqlops.New(pool(1))
		for {
			select {
			case <-writersDone:
				return
			default:
			}
			h, err := ops.Head(ctx)
			if err != nil {
				t.Errorf("head: %v", err)
				return
			}
			heads = append(heads, headSeen{time.Now(), h})
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// A new process every 20 ms: a pool of its own for one Head (it knows
	// only what the database keeps settled: the floor, sql/mysql/00019).
	var freshHeads []headSeen
	freshDone := make(chan struct{})
	go func() {
		defer close(freshDone)
		for {
			select {
			case <-writersDone:
				return
			default:
			}
			p := pool(1)
			h, err := mysqlops.New(p).Head(ctx)
			_ = p.Close()
			if err != nil {
				t.Errorf("fresh head: %v", err)
				return
			}
			freshHeads = append(freshHeads, headSeen{time.Now(), h})
			time.Sleep(20 * time.Millisecond)
		}
	}()

	const followers = 3
	seen := make([]map[string]int64, followers)
	var fwg sync.WaitGroup
	for f := range followers {
		seen[f] = map[string]int64{}
		fwg.Add(1)
		go func() {
			defer fwg.Done()
			ops := mysqlops.New(pool(1 + f))
			next := int64(1)
			read := func() (int, error) {
				evs, err := ops.ReadAll(ctx, next, 7)
				if err != nil {
					return 0, err
				}
				for _, e := range evs {
					if e.GlobalPosition < next {
						return 0, fmt.Errorf("follower %d: position %d after %d", f, e.GlobalPosition, next-1)
					}
					if _, dup := seen[f][e.ID]; dup {
						return 0, fmt.Errorf("follower %d: event %s at %d twice", f, e.ID, e.GlobalPosition)
					}
					seen[f][e.ID] = e.GlobalPosition
					next = e.GlobalPosition + 1
				}
				return len(evs), nil
			}
			for {
				n, err := read()
				if err != nil {
					t.Error(err)
					return
				}
				select {
				case <-writersDone:
					// Catch up: the cooldown is at most 2 s.
					deadline := time.Now().Add(15 * time.Second)
					for time.Now().Before(deadline) {
						if _, err := read(); err != nil {
							t.Error(err)
							return
						}
						time.Sleep(50 * time.Millisecond)
					}
					return
				default:
				}
				if n == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	select {
	case <-writersDone:
	case <-time.After(150 * time.Second):
		t.Fatal("writers did not finish in 150 s: appends stalled")
	}
	<-headDone
	<-freshDone
	fwg.Wait()
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int64{}
	for id, c := range committed {
		want[id] = c.pos
	}
	for f := range followers {
		require.Equal(t, want, seen[f], "follower %d saw exactly the committed events at their positions", f)
	}
	for i := 1; i < len(heads); i++ {
		require.GreaterOrEqual(t, heads[i].h, heads[i-1].h, "Head went back at %s", heads[i].at)
	}
	for id, c := range committed {
		for _, hs := range append(heads[:len(heads):len(heads)], freshHeads...) {
			if hs.h >= c.pos && hs.at.Before(c.start) {
				t.Fatalf("Head said %d complete at %s; event %s at %d began to commit only at %s",
					hs.h, hs.at.Format(time.StampMicro), id, c.pos, c.start.Format(time.StampMicro))
			}
		}
	}
	t.Logf("%d events committed; %d heads polled (last %d), %d by new pools (last %d); %d gate timeouts in the process",
		len(committed), len(heads), heads[len(heads)-1].h, len(freshHeads), freshHeads[len(freshHeads)-1].h, mysqlops.GateTimeouts())
}
