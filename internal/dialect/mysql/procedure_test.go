package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	mysqlops "github.com/eventfold/eventfold/internal/dialect/mysql"
)

// procEvents renders events the way a DBA writes the procedure's p_events.
func procEvents(ids ...string) string {
	s := "["
	for i, id := range ids {
		if i > 0 {
			s += ","
		}
		s += fmt.Sprintf(`{"id": %q, "type": "Deposited", "data": {"n": %d}}`, id, i)
	}
	return s + "]"
}

// logState is what a torn append would leave behind. counter is the
// highest position taken by a committed append: the counter row's value
// before 00015, and since 00015 (positions from AUTO_INCREMENT, the row no
// longer maintained) the highest position in the log if that is higher.
type logState struct {
	counter, events, version int64
}

func readLogState(t *testing.T, db *sql.DB, stream string) logState {
	t.Helper()
	var s logState
	require.NoError(t, db.QueryRow(`SELECT GREATEST(last_position, (SELECT COALESCE(MAX(global_position), 0) FROM eventfold_events)) FROM eventfold_position WHERE id = 1`).Scan(&s.counter))
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM eventfold_events`).Scan(&s.events))
	require.NoError(t, db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM eventfold_streams WHERE stream_id = ?`, stream).Scan(&s.version))
	return s
}

// TestBareCallIsAtomic: a bare CALL from a plain connection (autocommit on,
// as the README's example runs it) commits everything or nothing. Before
// 00005 each statement of the procedure committed by itself: a duplicate
// event id in the second event left the stream version and the counter
// advanced without any event (a hole readers can never fill).
func TestBareCallIsAtomic(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	var autocommit int
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT @@autocommit`).Scan(&autocommit))
	require.Equal(t, 1, autocommit, "a plain connection")

	call := func(stream string, expected int64, events string) error {
		rows, err := conn.QueryContext(ctx, `CALL eventfold_append_events(?, ?, ?)`, stream, expected, events)
		if err != nil {
			return err
		}
		for rows.Next() {
		}
		return errors.Join(rows.Err(), rows.Close())
	}
	first := uuid.NewString()
	require.NoError(t, call("acct", -2, procEvents(first, uuid.NewString())))
	before := readLogState(t, db, "acct")
	require.Equal(t, logState{counter: 2, events: 2, version: 2}, before)
	var inTx int
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT @@in_transaction`).Scan(&inTx))
	require.Zero(t, inTx, "the procedure committed the transaction it opened")

	// Fails halfway: the stream row and the counter are updated, then the
	// second event's id collides (1062) when the events are inserted.
	err = call("acct", 2, procEvents(uuid.NewString(), first))
	var me *gomysql.MySQLError
	require.ErrorAs(t, err, &me)
	require.Equal(t, uint16(1062), me.Number, "the duplicate event id, raised unchanged")
	require.Equal(t, before, readLogState(t, db, "acct"), "nothing of the failed CALL is left")
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT @@in_transaction`).Scan(&inTx))
	require.Zero(t, inTx, "the failed CALL's transaction was rolled back, not left open")

	// A new stream that fails halfway leaves no stream row either.
	err = call("fresh", -1, procEvents(uuid.NewString(), first))
	require.ErrorAs(t, err, &me)
	require.Equal(t, logState{counter: 2, events: 2, version: 0}, readLogState(t, db, "fresh"))

	// Errors the procedure raises itself keep their number.
	err = call("acct", 7, procEvents(uuid.NewString()))
	require.ErrorAs(t, err, &me)
	require.Equal(t, uint16(31001), me.Number)
	require.Contains(t, me.Message, "actual=2")

	// The next bare CALL takes a higher position (since 00015 the failed
	// CALLs' positions stay dead: AUTO_INCREMENT does not give them back),
	// and ReadAll passes the dead ones.
	require.NoError(t, call("acct", 2, procEvents(uuid.NewString())))
	evs, err := mysqlops.New(db).ReadAll(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 3)
	require.Greater(t, evs[2].GlobalPosition, evs[1].GlobalPosition)
	require.Equal(t, int64(3), evs[2].StreamVersion)

	// Inside the caller's transaction the caller decides: a rollback undoes the CALL.
	_, err = conn.ExecContext(ctx, `START TRANSACTION`)
	require.NoError(t, err)
	require.NoError(t, call("acct", 3, procEvents(uuid.NewString())))
	require.NoError(t, conn.QueryRowContext(ctx, `SELECT @@in_transaction`).Scan(&inTx))
	require.Equal(t, 1, inTx, "the procedure did not commit the caller's transaction")
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	require.Equal(t, logState{counter: evs[2].GlobalPosition, events: 3, version: 3}, readLogState(t, db, "acct"))

	// autocommit=0 after a statement has touched a table is a transaction too.
	_, err = conn.ExecContext(ctx, `SET autocommit = 0`)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, `SELECT COUNT(*) FROM eventfold_streams`)
	require.NoError(t, err)
	require.NoError(t, call("acct", 3, procEvents(uuid.NewString())))
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	require.Equal(t, logState{counter: evs[2].GlobalPosition, events: 3, version: 3}, readLogState(t, db, "acct"))
	// ... and so is it when the CALL comes first (since 00021; before, the
	// CALL opened and committed its own and the ROLLBACK left it).
	require.NoError(t, call("acct", 3, procEvents(uuid.NewString())))
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	require.NoError(t, err)
	require.Equal(t, logState{counter: evs[2].GlobalPosition, events: 3, version: 3}, readLogState(t, db, "acct"))
	require.NoError(t, call("acct", 3, procEvents(uuid.NewString())))
	_, err = conn.ExecContext(ctx, `COMMIT`)
	require.NoError(t, err)
	st := readLogState(t, db, "acct")
	require.Equal(t, logState{counter: st.counter, events: 4, version: 4}, st)
	require.Greater(t, st.counter, evs[2].GlobalPosition)
	_, err = conn.ExecContext(ctx, `SET autocommit = 1`)
	require.NoError(t, err)
}

// TestBareCallsKeepPositionOrder: while 16 clients make bare CALLs, an
// outside reader polling "position > last" never sees a later position
// before an earlier one (before 00005 it did in a third of its polls: the
// counter bump committed before the events).
func TestBareCallsKeepPositionOrder(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	db.SetMaxOpenConns(24)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var transient atomic.Int64
	for c := range 16 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				rows, err := db.QueryContext(context.Background(), `CALL eventfold_append_events(?, -1, ?)`,
					fmt.Sprintf("c%d-%d", c, i%3), procEvents(uuid.NewString()))
				if err == nil {
					for rows.Next() {
					}
					err = errors.Join(rows.Err(), rows.Close())
				}
				if err != nil && !errors.Is(mysqlops.InterpretErrorForTest(err), eventfold.ErrTransient) {
					t.Errorf("client %d: %v", c, err)
					return
				}
				if err != nil {
					transient.Add(1)
				}
			}
		})
	}
	var polls, disorder, torn, gated int
	last := int64(0)
	for ctx.Err() == nil {
		rows, err := db.QueryContext(context.Background(), `SELECT global_position FROM eventfold_events WHERE global_position > ? ORDER BY global_position LIMIT 100`, last)
		require.NoError(t, err)
		polls++
		var seen []int64
		for rows.Next() {
			var p int64
			require.NoError(t, rows.Scan(&p))
			seen = append(seen, p)
		}
		require.NoError(t, rows.Close())
		for _, p := range seen {
			if p != last+1 {
				// A plain poll may meet MariaDB's read-view race (what
				// ReadAll guards against): then the missing rows are
				// committed already, and a locking read, which reads the
				// latest committed rows, finds them. A missing row it does
				// not find is a CALL whose later statements had not
				// committed yet: torn.
				disorder++
				// Since 00015 a position may also be allocated with its
				// row not in the index yet: the gate (FOR UPDATE on the
				// eventfold_position row) waits for every CALL that took
				// it, and then the locking read must find every row.
				var found int64
				count := func() {
					require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM eventfold_events WHERE global_position > ? AND global_position < ? LOCK IN SHARE MODE`, last, p).Scan(&found))
				}
				count()
				if found != p-last-1 {
					gated++
					_, err := db.Exec(`SELECT id FROM eventfold_position WHERE id = 1 FOR UPDATE`)
					require.NoError(t, err)
					count()
				}
				if found != p-last-1 {
					torn++
				}
			}
			last = p
		}
	}
	wg.Wait()
	require.Positive(t, last)
	require.Zero(t, torn, "a poll saw a later CALL's events before an earlier CALL's (%d of %d polls)", torn, polls)
	var count, top int64
	require.NoError(t, db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(global_position), 0) FROM eventfold_events`).Scan(&count, &top))
	if transient.Load() == 0 {
		require.Equal(t, top, count, "every position handed out holds an event (no CALL failed)")
	}
	t.Logf("%d polls, %d saw a later position first (all of them committed in the end), %d needed the gate, %d events, %d transient failures", polls, disorder, gated, count, transient.Load())
}

// TestNewStreamsNoDeadlockAtRepeatableRead: one caller holds a transaction
// open for 4 s while 16 callers, at the server default REPEATABLE READ,
// append with expected version "any" to one of 5 new streams. Before 00005
// the procedure read the missing stream row FOR UPDATE first, each caller
// took a gap lock, and their INSERTs deadlocked (error 1213).
func TestNewStreamsNoDeadlockAtRepeatableRead(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	db.SetMaxOpenConns(24)
	ctx := context.Background()
	for _, mode := range []string{"explicit transaction", "bare call"} {
		holder, err := db.Conn(ctx)
		require.NoError(t, err)
		_, err = holder.ExecContext(ctx, `SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ`)
		require.NoError(t, err)
		_, err = holder.ExecContext(ctx, `START TRANSACTION`)
		require.NoError(t, err)
		rows, err := holder.QueryContext(ctx, `CALL eventfold_append_events('holder', -1, ?)`, procEvents(uuid.NewString()))
		require.NoError(t, err)
		for rows.Next() {
		}
		require.NoError(t, rows.Close())

		var deadlocks, other atomic.Int64
		var wg sync.WaitGroup
		for c := range 16 {
			wg.Go(func() {
				conn, err := db.Conn(ctx)
				if err != nil {
					other.Add(1)
					return
				}
				defer conn.Close()
				_, _ = conn.ExecContext(ctx, `SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ`)
				for i := range 6 {
					stream := fmt.Sprintf("%s-new-%d", mode[:4], (c+i)%5)
					err := func() error {
						if mode == "explicit transaction" {
							if _, err := conn.ExecContext(ctx, `START TRANSACTION`); err != nil {
								return err
							}
						}
						rows, err := conn.QueryContext(ctx, `CALL eventfold_append_events(?, -1, ?)`, stream, procEvents(uuid.NewString()))
						if err == nil {
							for rows.Next() {
							}
							err = errors.Join(rows.Err(), rows.Close())
						}
						if mode == "explicit transaction" {
							if err != nil {
								_, _ = conn.ExecContext(ctx, `ROLLBACK`)
								return err
							}
							_, err = conn.ExecContext(ctx, `COMMIT`)
						}
						return err
					}()
					var me *gomysql.MySQLError
					switch {
					case err == nil:
					case errors.As(err, &me) && me.Number == 1213:
						deadlocks.Add(1)
					default:
						other.Add(1)
						t.Logf("%s: %v", mode, err)
					}
				}
			})
		}
		time.Sleep(4 * time.Second)
		_, err = holder.ExecContext(ctx, `COMMIT`)
		require.NoError(t, err)
		require.NoError(t, holder.Close())
		wg.Wait()
		require.Zero(t, deadlocks.Load(), "%s: appends with expected version any deadlocked", mode)
		require.Zero(t, other.Load(), "%s: other errors", mode)
	}
	var n int64
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM eventfold_events`).Scan(&n))
	require.Equal(t, int64(2+2*16*6), n)
}

// TestProcedureRefusesNonUTF8StreamID: the stream id column holds bytes
// since 00005, so the procedure itself refuses an id that is not UTF-8
// (a DBA's CALL skips eventfold's Go validation); before, the utf8mb4
// parameter did.
func TestProcedureRefusesNonUTF8StreamID(t *testing.T) {
	t.Parallel()
	db := latestDB(t)
	_, err := db.Exec(`CALL eventfold_append_events(0x61FF62, -1, ?)`, procEvents(uuid.NewString()))
	var me *gomysql.MySQLError
	require.ErrorAs(t, err, &me)
	require.Equal(t, uint16(31002), me.Number)
	require.Contains(t, me.Message, "UTF-8")
	_, err = db.Exec(`CALL eventfold_append_events(?, -1, ?)`, "konto-äö-✓", procEvents(uuid.NewString()))
	require.NoError(t, err)
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM eventfold_streams`).Scan(&n))
	require.Equal(t, 1, n)
}

// TestKilledBareCallLeavesNothing: a bare CALL whose connection is killed
// while it waits for a lock leaves no trace. Before 00005 the stream's new
// version had already committed by itself. Two places to wait: the stream
// row (held by another CALL's open transaction), where the victim has
// written nothing yet, and the gate (the eventfold_position row, held FOR
// UPDATE as a reader holds it; before 00015 the position counter), where
// it has already raised its stream's version: only that one can catch a
// CALL that is not atomic, so the test checks that the victim has
// modified rows when it is killed. (Checked on schema 4, the procedure
// before 00005: the gate case fails, its victim's stream version 2 left
// behind, committed by itself; the stream-row case passes there.)
func TestKilledBareCallLeavesNothing(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"stream row", "gate"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			db := latestDB(t)
			ctx := context.Background()
			_, err := db.ExecContext(ctx, `CALL eventfold_append_events('victim', -2, ?)`, procEvents(uuid.NewString()))
			require.NoError(t, err)
			holder, err := db.Conn(ctx)
			require.NoError(t, err)
			defer holder.Close()
			_, err = holder.ExecContext(ctx, `START TRANSACTION`)
			require.NoError(t, err)
			want := logState{counter: 1, events: 1, version: 1}
			if at == "stream row" {
				_, err = holder.ExecContext(ctx, `CALL eventfold_append_events('victim', -1, ?)`, procEvents(uuid.NewString()))
				want = logState{counter: 2, events: 2, version: 2}
			} else {
				_, err = holder.ExecContext(ctx, `SELECT id FROM eventfold_position WHERE id = 1 FOR UPDATE`)
			}
			require.NoError(t, err)

			victim, err := db.Conn(ctx)
			require.NoError(t, err)
			defer victim.Close()
			var id int64
			require.NoError(t, victim.QueryRowContext(ctx, `SELECT CONNECTION_ID()`).Scan(&id))
			done := make(chan error, 1)
			go func() {
				_, err := victim.ExecContext(ctx, `CALL eventfold_append_events('victim', -1, ?)`, procEvents(uuid.NewString()))
				done <- err
			}()
			// Wait until the victim waits for the lock (no sleep: the
			// server says so), and see what it has written by then.
			// Polled every 250ms: InnoDB refreshes INNODB_TRX only when it
			// was not read for 100ms, so a faster poll (it was 10ms) reads
			// the same stale table for ever and the test failed under load.
			var modified int64
			require.Eventually(t, func() bool {
				err := db.QueryRowContext(ctx, `SELECT trx_rows_modified FROM information_schema.INNODB_TRX
					WHERE trx_mysql_thread_id = ? AND trx_state = 'LOCK WAIT'`, id).Scan(&modified)
				return err == nil
			}, 30*time.Second, 250*time.Millisecond, "the victim never waited for the lock")
			if at == "gate" {
				require.Positive(t, modified, "the victim waits at the gate after raising its stream's version")
			}
			_, err = db.ExecContext(ctx, fmt.Sprintf(`KILL %d`, id))
			require.NoError(t, err)
			require.Error(t, <-done)
			_, err = holder.ExecContext(ctx, `COMMIT`)
			require.NoError(t, err)

			require.Equal(t, want, readLogState(t, db, "victim"), "nothing of the killed CALL is left")
		})
	}
}
