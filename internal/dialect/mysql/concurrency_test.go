package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// raceAppends starts n transactions at once, each appending one event to
// stream under expected and holding its transaction open for hold before
// committing, so that the others reach the stream while the first is still
// open. It returns each append's error (nil for the winners).
func raceAppends(t *testing.T, db *sql.DB, n int, stream string, expected eventfold.ExpectedVersion, hold time.Duration) []error {
	t.Helper()
	ctx := context.Background()
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
			if err != nil {
				errs[i] = fmt.Errorf("begin: %w", err)
				return
			}
			defer func() { _ = tx.Rollback() }()
			<-start
			if _, err := mysqlops.New(tx).Append(ctx, stream, expected, []eventfold.EventData{newEvent("Raced")}); err != nil {
				errs[i] = err
				return
			}
			time.Sleep(hold)
			errs[i] = tx.Commit()
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// TestConcurrentAppendsSameVersion: appends to one stream that all expect
// the same version produce exactly one winner; the others are refused with
// the version the winner left, never a deadlock.
func TestConcurrentAppendsSameVersion(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	_, err := appendTx(t, db, "contended", eventfold.NoStream, newEvent("Created"))
	require.NoError(t, err)

	errs := raceAppends(t, db, 8, "contended", eventfold.Exact(1), 20*time.Millisecond)
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		var wev *eventfold.WrongExpectedVersionError
		require.ErrorAs(t, err, &wev)
		require.Equal(t, int64(2), wev.Actual)
		require.NotErrorIs(t, err, eventfold.ErrTransient)
	}
	require.Equal(t, 1, winners)
	v, err := mysqlops.New(db).StreamVersion(context.Background(), "contended")
	require.NoError(t, err)
	require.Equal(t, int64(2), v)
}

// TestConcurrentStreamCreation: transactions creating the same new stream
// at once. With NoStream exactly one wins and the others learn the
// winner's version (through the procedure's INSERT ... ON DUPLICATE KEY
// UPDATE, or by waiting on the row lock); with Any every one of them
// appends, in turn, and none deadlocks.
func TestConcurrentStreamCreation(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()

	errs := raceAppends(t, db, 8, "born-once", eventfold.NoStream, 30*time.Millisecond)
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		var wev *eventfold.WrongExpectedVersionError
		require.ErrorAs(t, err, &wev)
		require.Equal(t, int64(1), wev.Actual)
	}
	require.Equal(t, 1, winners)

	errs = raceAppends(t, db, 8, "born-by-all", eventfold.Any, 10*time.Millisecond)
	for _, err := range errs {
		require.NoError(t, err, "Any never fails on a concurrently created stream")
	}
	evs, err := mysqlops.New(db).ReadStream(ctx, "born-by-all", 1, 100, false)
	require.NoError(t, err)
	require.Len(t, evs, 8)
	for i, e := range evs {
		require.Equal(t, int64(i+1), e.StreamVersion)
	}
}

// TestStreamCreationRace forces the case the procedure's INSERT ... ON
// DUPLICATE KEY UPDATE exists for: two transactions both find the stream
// missing, and both insert its row. A test-only trigger slows each INSERT
// down so that the second appender's check happens before the first one's
// INSERT; the second INSERT then waits for the first transaction and, when
// it commits, locks the winner's row instead of failing.
func TestStreamCreationRace(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	_, err := db.ExecContext(ctx, `CREATE TRIGGER test_slow_stream_insert BEFORE INSERT ON eventfold_streams
		FOR EACH ROW DO SLEEP(0.3)`)
	require.NoError(t, err)

	race := func(stream string, expected eventfold.ExpectedVersion) []error {
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(time.Duration(i) * 100 * time.Millisecond) // second starts inside the first's INSERT
				_, errs[i] = appendTx(t, db, stream, expected, newEvent("Raced"))
			}()
		}
		wg.Wait()
		return errs
	}

	errs := race("raced-no-stream", eventfold.NoStream)
	winners := 0
	for _, err := range errs {
		if err == nil {
			winners++
			continue
		}
		var wev *eventfold.WrongExpectedVersionError
		require.ErrorAs(t, err, &wev, "the late creator learns the stream exists")
		require.Equal(t, int64(1), wev.Actual)
	}
	require.Equal(t, 1, winners)

	errs = race("raced-any", eventfold.Any)
	require.NoError(t, errs[0])
	require.NoError(t, errs[1], "with Any the late creator re-reads the row and appends")
	v, err := mysqlops.New(db).StreamVersion(ctx, "raced-any")
	require.NoError(t, err)
	require.Equal(t, int64(2), v)
}

// appendInBackground appends to stream in a new transaction and commits;
// the result arrives on the returned channel.
func appendInBackground(db *sql.DB, stream string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
		if err != nil {
			done <- err
			return
		}
		if _, err := mysqlops.New(tx).Append(ctx, stream, eventfold.Any, []eventfold.EventData{newEvent("Later")}); err != nil {
			_ = tx.Rollback()
			done <- err
			return
		}
		done <- tx.Commit()
	}()
	return done
}

// TestOutOfOrderCommit holds one appending transaction open while another
// transaction appends to a different stream. Since 00015 the second does
// not wait (positions come from AUTO_INCREMENT, the gate is a share lock):
// it commits position 2 while 1 is still open. Readers must not hand out 2
// before 1 is decided: ReadAll and Head wait for the first transaction,
// then deliver 1, 2 (commit) or pass the dead 1 (rollback). Before 00015
// the second append waited on the counter instead.
func TestOutOfOrderCommit(t *testing.T) {
	t.Parallel()
	for _, commitFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("first-commits=%v", commitFirst), func(t *testing.T) {
			t.Parallel()
			db := migratedDB(t)
			ctx := context.Background()
			ops := mysqlops.New(db)

			txA := begin(t, db)
			evA, err := mysqlops.New(txA).Append(ctx, "slow", eventfold.NoStream, []eventfold.EventData{newEvent("Slow")})
			require.NoError(t, err)
			require.Equal(t, int64(1), evA[0].GlobalPosition)

			select {
			case err := <-appendInBackground(db, "fast"):
				require.NoError(t, err, "the second append does not wait for the first")
			case <-time.After(10 * time.Second):
				t.Fatal("the second append waited for the first transaction")
			}
			var plain []int64
			rows, err := db.QueryContext(ctx, `SELECT global_position FROM eventfold_events ORDER BY global_position`)
			require.NoError(t, err)
			for rows.Next() {
				var p int64
				require.NoError(t, rows.Scan(&p))
				plain = append(plain, p)
			}
			require.NoError(t, rows.Close())
			require.Equal(t, []int64{2}, plain, "a plain read shows 2 without 1")

			// The goroutines only send: a t.Error after the test ended
			// (a Fatal below) would panic the whole package.
			type readResult struct {
				evs []eventfold.Event
				err error
			}
			type headResult struct {
				h   int64
				err error
			}
			read := make(chan readResult, 1)
			go func() {
				evs, err := ops.ReadAll(ctx, 0, 100)
				read <- readResult{evs, err}
			}()
			head := make(chan headResult, 1)
			go func() {
				h, err := ops.Head(ctx)
				head <- headResult{h, err}
			}()
			select {
			case r := <-read:
				t.Fatalf("ReadAll returned %d events (err %v) while position 1 was undecided", len(r.evs), r.err)
			case r := <-head:
				t.Fatalf("Head returned %d (err %v) while position 1 was undecided", r.h, r.err)
			case <-time.After(300 * time.Millisecond):
			}

			if commitFirst {
				require.NoError(t, txA.Commit())
			} else {
				require.NoError(t, txA.Rollback())
			}
			var evs []eventfold.Event
			select {
			case r := <-read:
				require.NoError(t, r.err)
				evs = r.evs
			case <-time.After(10 * time.Second):
				t.Fatal("ReadAll did not return after the first transaction ended")
			}
			select {
			case r := <-head:
				require.NoError(t, r.err)
				require.Equal(t, int64(2), r.h)
			case <-time.After(10 * time.Second):
				t.Fatal("Head did not return after the first transaction ended")
			}
			if commitFirst {
				require.Len(t, evs, 2)
				require.Equal(t, "slow", evs[0].StreamID)
				require.Equal(t, int64(1), evs[0].GlobalPosition)
				require.Equal(t, "fast", evs[1].StreamID)
				require.Equal(t, int64(2), evs[1].GlobalPosition)
			} else {
				require.Len(t, evs, 1, "the rolled-back event is gone")
				require.Equal(t, "fast", evs[0].StreamID)
				require.Equal(t, int64(2), evs[0].GlobalPosition, "its position stays dead")
				v, err := ops.StreamVersion(ctx, "slow")
				require.NoError(t, err)
				require.Zero(t, v, "the rolled-back stream row is gone too")
			}
		})
	}
}

// TestReaderNeverSkips runs writers that commit and roll back at random
// while a reader follows the log from "last position + 1". The reader must
// see every position in order with no hole (a hole it passed could be
// filled later and be lost to it), and at the end exactly the committed
// events.
func TestReaderNeverSkips(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()
	const writers, txsPerWriter = 6, 15

	var mu sync.Mutex
	committed := map[string]bool{}
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
				if _, err := mysqlops.New(tx).Append(ctx, stream, eventfold.Any, evs); err != nil {
					_ = tx.Rollback()
					t.Errorf("writer %d tx %d: %v", w, i, err)
					return
				}
				time.Sleep(time.Duration(rand.IntN(4)) * time.Millisecond)
				if rand.IntN(4) == 0 {
					if err := tx.Rollback(); err != nil {
						t.Errorf("writer %d rollback: %v", w, err)
						return
					}
					continue
				}
				if err := tx.Commit(); err != nil {
					t.Errorf("writer %d commit: %v", w, err)
					return
				}
				mu.Lock()
				for _, e := range evs {
					committed[e.ID] = true
				}
				mu.Unlock()
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	ops := mysqlops.New(db)
	seen := map[string]bool{}
	next := int64(1)
	read := func() int {
		evs, err := ops.ReadAll(ctx, next, 7)
		require.NoError(t, err)
		for _, e := range evs {
			// Since 00015 a rolled-back append leaves its positions dead:
			// ascending, not dense. A skip shows at the end (an event
			// committed below next is never seen).
			require.GreaterOrEqual(t, e.GlobalPosition, next, "positions go back")
			require.False(t, seen[e.ID], "event %s seen twice", e.ID)
			seen[e.ID] = true
			next = e.GlobalPosition + 1
		}
		return len(evs)
	}
	deadline := time.After(60 * time.Second)
loop:
	for {
		select {
		case <-writersDone:
			break loop
		case <-deadline:
			t.Fatal("writers did not finish in 60s")
		default:
		}
		if read() == 0 {
			time.Sleep(time.Millisecond)
		}
	}
	for read() > 0 {
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, committed, seen, "the reader saw exactly the committed events")
	head, err := ops.Head(ctx)
	require.NoError(t, err)
	require.Equal(t, next-1, head, "the head is the last position read")
	t.Logf("%d events committed by %d writers; reader saw all, in order, without holes", len(committed), writers)
}

// TestLockConflictsAreTransient: two transactions that append to the same
// two streams in opposite order deadlock, and an append that waits on a
// stream row longer than innodb_lock_wait_timeout times out. Both report
// ErrTransient. (Before 00015 the cycle and the wait were on the position
// counter.)
func TestLockConflictsAreTransient(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	ctx := context.Background()

	t.Run("deadlock", func(t *testing.T) {
		txA := begin(t, db)
		_, err := mysqlops.New(txA).Append(ctx, "dl-a", eventfold.Any, []eventfold.EventData{newEvent("A")})
		require.NoError(t, err) // A holds dl-a
		txB := begin(t, db)
		_, err = mysqlops.New(txB).Append(ctx, "dl-b", eventfold.Any, []eventfold.EventData{newEvent("B")})
		require.NoError(t, err) // B holds dl-b

		doneB := make(chan error, 1)
		go func() {
			// B now waits for dl-a, which A holds.
			_, err := mysqlops.New(txB).Append(ctx, "dl-a", eventfold.Any, []eventfold.EventData{newEvent("B2")})
			doneB <- err
		}()
		time.Sleep(200 * time.Millisecond)
		// A now wants dl-b, which B holds: a cycle.
		_, errA := mysqlops.New(txA).Append(ctx, "dl-b", eventfold.Any, []eventfold.EventData{newEvent("A2")})
		if errA == nil {
			require.NoError(t, txA.Commit())
		} else {
			require.NoError(t, txA.Rollback())
		}
		errB := <-doneB
		if errB == nil {
			require.NoError(t, txB.Commit())
		} else {
			_ = txB.Rollback()
		}
		failures := 0
		for _, err := range []error{errA, errB} {
			if err != nil {
				failures++
				require.ErrorIs(t, err, eventfold.ErrTransient)
			}
		}
		require.Equal(t, 1, failures, "InnoDB picks one victim")
	})

	t.Run("lock wait timeout", func(t *testing.T) {
		txA := begin(t, db)
		_, err := mysqlops.New(txA).Append(ctx, "lw-a", eventfold.Any, []eventfold.EventData{newEvent("A")})
		require.NoError(t, err)

		txB := begin(t, db)
		require.NoError(t, mysqlops.New(txB).Exec(ctx, "SET SESSION innodb_lock_wait_timeout = 1"))
		_, err = mysqlops.New(txB).Append(ctx, "lw-a", eventfold.Any, []eventfold.EventData{newEvent("B")})
		require.ErrorIs(t, err, eventfold.ErrTransient)
		require.False(t, errors.Is(err, eventfold.ErrWrongExpectedVersion))
		require.NoError(t, txB.Rollback())
		require.NoError(t, txA.Commit())
	})

	// The wait the test had before 00015, on the eventfold_position row,
	// now the gate: an append that waits for its share lock behind a reader
	// (who holds the row FOR UPDATE) longer than innodb_lock_wait_timeout
	// fails with ErrTransient, and leaves nothing in its transaction: the
	// stream version it had raised before the gate is undone.
	t.Run("lock wait timeout at the gate", func(t *testing.T) {
		reader := begin(t, db)
		_, err := reader.ExecContext(ctx, `SELECT id FROM eventfold_position WHERE id = 1 FOR UPDATE`)
		require.NoError(t, err)

		txB := begin(t, db)
		require.NoError(t, mysqlops.New(txB).Exec(ctx, "SET SESSION innodb_lock_wait_timeout = 1"))
		_, err = mysqlops.New(txB).Append(ctx, "lw-gate", eventfold.Any, []eventfold.EventData{newEvent("B")})
		require.ErrorIs(t, err, eventfold.ErrTransient)
		require.False(t, errors.Is(err, eventfold.ErrWrongExpectedVersion))
		v, err := mysqlops.New(txB).StreamVersion(ctx, "lw-gate")
		require.NoError(t, err)
		require.Zero(t, v, "the failed append left its stream row in the transaction")
		require.NoError(t, txB.Rollback())
		require.NoError(t, reader.Rollback())
	})
}
