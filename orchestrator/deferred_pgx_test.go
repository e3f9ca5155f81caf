package orchestrator_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/pgxdriver"
)

// dwDeposit is the deferred-writes tests' command: Amount goes into the
// dw_acct row of Account (a CHECK refuses totals of 100 and more).
type dwDeposit struct {
	Account string `json:"account"`
	Amount  int    `json:"amount"`
	// FailAfter makes the second reducer return an error (not SQL).
	FailAfter bool `json:"fail_after"`
}

type dwMode struct {
	name string
	cfg  orchestrator.Config
	ids  bool
}

func dwModes() []dwMode {
	base := orchestrator.Config{MaxAttempts: 5, BaseBackoff: time.Millisecond}
	markers := base
	markers.DispatchCommitMarkers = true
	group := base
	group.GroupCommit = &orchestrator.GroupCommitConfig{Committers: 1, MaxBatch: 8}
	batched := base
	batched.GroupCommit = &orchestrator.GroupCommitConfig{Committers: 1, MaxBatch: 8, Batched: true}
	return []dwMode{
		{name: "dispatch", cfg: base},
		{name: "dispatch-ids", cfg: base, ids: true},
		{name: "dispatch-markers", cfg: markers},
		{name: "group-savepoints", cfg: group},
		{name: "group-savepoints-ids", cfg: group, ids: true},
		{name: "group-batched", cfg: batched},
		{name: "group-batched-ids", cfg: batched, ids: true},
	}
}

// dwSetup returns a store on a fresh database with the dw_acct table, and
// an orchestrator whose "acct" reducer upserts it with deferred writes and
// whose "after" reducer (not deferred) reads the row back. tags collects
// the command tags the deferred Exec returned.
func dwSetup(t *testing.T, cfg orchestrator.Config) (*eventfold.Store[pgx.Tx], *orchestrator.Orchestrator[pgx.Tx], *tagLog) {
	t.Helper()
	ctx := context.Background()
	store := testdb.PgxStore(t)
	pool := store.Driver().(*pgxdriver.Driver).Pool()
	_, err := pool.Exec(ctx, `CREATE TABLE dw_acct (id text PRIMARY KEY, n int NOT NULL CHECK (n < 100))`)
	require.NoError(t, err)
	o := orchestrator.New(store, &cfg)
	orchestrator.Handle(o, "Deposit", func(ctx context.Context, tx pgx.Tx, c dwDeposit) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "acct-" + c.Account, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
	})
	tags := &tagLog{}
	orchestrator.Reduce(o, "Deposited", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event, c dwDeposit) error {
		tag, err := tx.Exec(ctx, `INSERT INTO dw_acct (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = dw_acct.n + EXCLUDED.n`, c.Account, c.Amount)
		tags.add(tag.String())
		return err
	}, orchestrator.WithName("acct"), orchestrator.WithDeferredWrites())
	orchestrator.Reduce(o, "Deposited", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event, c dwDeposit) error {
		// Read-your-writes: the deferred upsert is visible here.
		var n int
		if err := tx.QueryRow(ctx, `SELECT n FROM dw_acct WHERE id = $1`, c.Account).Scan(&n); err != nil {
			return fmt.Errorf("read back: %w", err)
		}
		if c.FailAfter {
			return errors.New("after: refused")
		}
		return nil
	}, orchestrator.WithName("after"))
	return store, o, tags
}

type tagLog struct {
	mu   sync.Mutex
	tags []string
}

func (l *tagLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tags = append(l.tags, s)
}

func dwEnv(m dwMode, id string) orchestrator.Envelope {
	if !m.ids {
		return orchestrator.Envelope{}
	}
	return orchestrator.Envelope{ID: id}
}

func dwBalance(t *testing.T, store *eventfold.Store[pgx.Tx], id string) (int, bool) {
	t.Helper()
	var n int
	err := store.Driver().(*pgxdriver.Driver).Pool().QueryRow(context.Background(), `SELECT n FROM dw_acct WHERE id = $1`, id).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false
	}
	require.NoError(t, err)
	return n, true
}

// TestDeferredWritesFailureIsTheReducers: a deferred write that the server
// refuses (a CHECK) fails the dispatch with a *ReducerError naming the
// reducer that queued it -- not "after", whose read sent it -- and nothing
// of the command is stored; commands batched with it (group commit, both
// modes) commit. Concurrent good and bad commands, every mode.
func TestDeferredWritesFailureIsTheReducers(t *testing.T) {
	for _, m := range dwModes() {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			store, o, tags := dwSetup(t, m.cfg)
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					amount := 10
					if i%2 == 1 {
						amount = 500 // refused by the CHECK
					}
					_, errs[i] = o.Dispatch(ctx, orchestrator.Command{Name: "Deposit",
						Payload: dwDeposit{Account: fmt.Sprintf("a%d", i), Amount: amount}, Envelope: dwEnv(m, fmt.Sprintf("k%d", i))})
				})
			}
			wg.Wait()
			for i := range n {
				acct := fmt.Sprintf("a%d", i)
				v, err := store.StreamVersion(ctx, "acct-"+acct)
				require.NoError(t, err)
				bal, found := dwBalance(t, store, acct)
				if i%2 == 0 {
					require.NoError(t, errs[i], "command %d", i)
					require.Equal(t, int64(1), v)
					require.True(t, found)
					require.Equal(t, 10, bal)
					continue
				}
				var re *orchestrator.ReducerError
				require.ErrorAs(t, errs[i], &re, "command %d", i)
				require.Equal(t, "acct", re.Reducer, "command %d: %v", i, errs[i])
				require.Equal(t, "Deposit", re.Command)
				require.Equal(t, "acct-"+acct, re.StreamID)
				require.Contains(t, errs[i].Error(), "dw_acct_n_check")
				require.False(t, orchestrator.IsRetryable(errs[i]))
				require.Zero(t, v, "command %d: its event committed", i)
				require.False(t, found, "command %d: its read-model row committed", i)
			}
			tags.mu.Lock()
			defer tags.mu.Unlock()
			require.NotEmpty(t, tags.tags)
			for _, tag := range tags.tags {
				require.Equal(t, "DEFERRED", tag, "the write was not deferred")
			}
		})
	}
}

// TestDeferredWritesRolledBackWithTheCommand: a command whose deferred
// write is queued and whose next reducer fails (a Go error, nothing the
// database refused) leaves nothing behind; in group commit the savepoint
// (or the batch's replay) drops its queued write while its neighbours
// commit.
func TestDeferredWritesRolledBackWithTheCommand(t *testing.T) {
	for _, m := range dwModes() {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			store, o, _ := dwSetup(t, m.cfg)
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Go(func() {
					_, errs[i] = o.Dispatch(ctx, orchestrator.Command{Name: "Deposit",
						Payload: dwDeposit{Account: "shared", Amount: 1, FailAfter: i%3 == 0}, Envelope: dwEnv(m, fmt.Sprintf("k%d", i))})
				})
			}
			wg.Wait()
			good := 0
			for i := range n {
				if i%3 == 0 {
					var re *orchestrator.ReducerError
					require.ErrorAs(t, errs[i], &re, "command %d", i)
					require.Equal(t, "after", re.Reducer)
					continue
				}
				require.NoError(t, errs[i], "command %d", i)
				good++
			}
			v, err := store.StreamVersion(ctx, "acct-shared")
			require.NoError(t, err)
			require.Equal(t, int64(good), v)
			bal, _ := dwBalance(t, store, "shared")
			require.Equal(t, good, bal, "a failed command's deferred write committed, or a good one's was lost")
		})
	}
}

// TestDeferredWritesSavepointInReducer: inside a deferred reducer, a
// savepoint taken with tx.Begin sends what is queued first, and what the
// reducer writes after it runs at once: rolling the savepoint back undoes
// exactly what it would undo without deferral.
func TestDeferredWritesSavepointInReducer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := testdb.PgxStore(t)
	pool := store.Driver().(*pgxdriver.Driver).Pool()
	_, err := pool.Exec(ctx, `CREATE TABLE dw_log (step text)`)
	require.NoError(t, err)
	o := orchestrator.New(store, nil)
	orchestrator.Handle(o, "Go", func(ctx context.Context, tx pgx.Tx, c dwDeposit) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "s", Expected: eventfold.Any, Type: "Went", Data: c}}, nil
	})
	var tags []string
	orchestrator.ReduceEvent(o, "Went", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event) error {
		ins := func(q pgx.Tx, step string) error {
			tag, err := q.Exec(ctx, `INSERT INTO dw_log VALUES ($1)`, step)
			tags = append(tags, tag.String())
			return err
		}
		if err := ins(tx, "before"); err != nil {
			return err
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		if err := ins(sp, "in-savepoint"); err != nil {
			return err
		}
		if err := ins(tx, "outer-during-savepoint"); err != nil {
			return err
		}
		if err := sp.Rollback(ctx); err != nil {
			return err
		}
		return ins(tx, "after")
	}, orchestrator.WithDeferredWrites())
	_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Go", Payload: dwDeposit{}})
	require.NoError(t, err)
	rows, err := pool.Query(ctx, `SELECT step FROM dw_log ORDER BY step`)
	require.NoError(t, err)
	steps, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	// Without deferral: the savepoint's rollback undoes "in-savepoint" and
	// "outer-during-savepoint" (both ran after SAVEPOINT).
	require.Equal(t, []string{"after", "before"}, steps)
	require.Equal(t, []string{"DEFERRED", "INSERT 0 1", "INSERT 0 1", "INSERT 0 1"}, tags)
}

// TestDeferredWritesRetryTransient: a deferred write that fails with a
// serialization failure (SQLSTATE 40001) at COMMIT is a *ReducerError
// matching ErrTransient, so the dispatch runs again and commits once.
func TestDeferredWritesRetryTransient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := testdb.PgxStore(t)
	pool := store.Driver().(*pgxdriver.Driver).Pool()
	_, err := pool.Exec(ctx, `CREATE SEQUENCE dw_seq;
CREATE TABLE dw_done (n bigint);
CREATE FUNCTION dw_once(x int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('dw_seq') = 1 THEN RAISE EXCEPTION 'first try' USING ERRCODE = '40001'; END IF;
  INSERT INTO dw_done VALUES (x);
END $$;`)
	require.NoError(t, err)
	o := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 3, BaseBackoff: time.Millisecond})
	orchestrator.Handle(o, "Go", func(ctx context.Context, tx pgx.Tx, c dwDeposit) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "s", Expected: eventfold.Any, Type: "Went", Data: c}}, nil
	})
	var tags []string
	orchestrator.ReduceEvent(o, "Went", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event) error {
		tag, err := tx.Exec(ctx, `SELECT dw_once($1)`, 7)
		tags = append(tags, tag.String())
		return err
	}, orchestrator.WithDeferredWrites(), orchestrator.WithName("once"))
	res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Go", Payload: dwDeposit{}})
	require.NoError(t, err)
	require.Equal(t, 2, res.Attempts)
	require.Equal(t, []string{"DEFERRED", "DEFERRED"}, tags)
	var done int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM dw_done`).Scan(&done))
	require.Equal(t, 1, done)
	v, err := store.StreamVersion(ctx, "s")
	require.NoError(t, err)
	require.Equal(t, int64(1), v)

	// With one attempt, the error is the reducer's and transient.
	o1 := orchestrator.New(store, &orchestrator.Config{MaxAttempts: 1})
	orchestrator.Handle(o1, "Go", func(ctx context.Context, tx pgx.Tx, c dwDeposit) ([]orchestrator.Emit, error) {
		return []orchestrator.Emit{{Stream: "s1", Expected: eventfold.Any, Type: "Went", Data: c}}, nil
	})
	orchestrator.ReduceEvent(o1, "Went", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event) error {
		_, err := tx.Exec(ctx, `SELECT dw_once(CASE WHEN $1 THEN 1 ELSE 1/0 END)`, false)
		return err
	}, orchestrator.WithDeferredWrites(), orchestrator.WithName("div"))
	_, err = o1.Dispatch(ctx, orchestrator.Command{Name: "Go", Payload: dwDeposit{}})
	var re *orchestrator.ReducerError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "div", re.Reducer)
	require.Contains(t, err.Error(), "division by zero")
	v, err = store.StreamVersion(ctx, "s1")
	require.NoError(t, err)
	require.Zero(t, v)
}

// TestDeferredWritesDispatchTxAndApply: DispatchTx and ApplyAll send the
// deferred writes before they return, so the caller's own statements and
// savepoints see them, and a failure is the call's error.
func TestDeferredWritesDispatchTxAndApply(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store, o, _ := dwSetup(t, orchestrator.Config{})
	drv := store.Driver()
	tx, err := drv.Begin(ctx)
	require.NoError(t, err)
	_, err = o.DispatchTx(ctx, tx, orchestrator.Command{Name: "Deposit", Payload: dwDeposit{Account: "x", Amount: 5}})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SAVEPOINT mine")
	require.NoError(t, err)
	_, err = o.DispatchTx(ctx, tx, orchestrator.Command{Name: "Deposit", Payload: dwDeposit{Account: "x", Amount: 500}})
	var re *orchestrator.ReducerError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "acct", re.Reducer)
	_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT mine")
	require.NoError(t, err)
	require.NoError(t, drv.Commit(ctx, tx))
	bal, _ := dwBalance(t, store, "x")
	require.Equal(t, 5, bal)

	evs, err := store.ReadStream(ctx, "acct-x", eventfold.ReadStreamOptions{})
	require.NoError(t, err)
	tx, err = drv.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, o.ApplyAll(ctx, tx, evs))
	var n int
	require.NoError(t, tx.QueryRow(ctx, `SELECT n FROM dw_acct WHERE id = 'x'`).Scan(&n))
	require.Equal(t, 10, n)
	require.NoError(t, drv.Rollback(ctx, tx))
}

// TestDeferredWritesNoOpOnDatabaseSQL: on database/sql (here SQLite and
// PostgreSQL through pgx's stdlib) WithDeferredWrites changes nothing: the
// statement runs at once and reports the rows it affected.
func TestDeferredWritesNoOpOnDatabaseSQL(t *testing.T) {
	for _, d := range []eventfold.Dialect{eventfold.SQLite, eventfold.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			store := testdb.SQLStore(t, d)
			_, err := store.Driver().DB().ExecContext(ctx, `CREATE TABLE dw_rows (n int)`)
			require.NoError(t, err)
			o := orchestrator.New(store, nil)
			orchestrator.Handle(o, "Go", func(ctx context.Context, tx *sql.Tx, c dwDeposit) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "s", Expected: eventfold.Any, Type: "Went", Data: c}}, nil
			})
			var affected int64 = -1
			orchestrator.ReduceEvent(o, "Went", func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
				r, err := tx.ExecContext(ctx, `INSERT INTO dw_rows VALUES (1), (2)`)
				if err != nil {
					return err
				}
				affected, err = r.RowsAffected()
				return err
			}, orchestrator.WithDeferredWrites())
			_, err = o.Dispatch(ctx, orchestrator.Command{Name: "Go", Payload: dwDeposit{}})
			require.NoError(t, err)
			require.Equal(t, int64(2), affected)
		})
	}
}

// countingConn counts the network writes of a connection: one per round
// trip for pgx, which writes a statement (or a whole pipeline) at once.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestDeferredWritesRoundTrips counts the client's network writes per
// dispatch of a one-event command with one reducer: 3 without deferred
// writes ([BEGIN+append], [upsert], [COMMIT]), 2 with
// ([BEGIN+append], [upsert+COMMIT]); with a command id, the idempotency
// lookup adds one and the record travels with COMMIT.
func TestDeferredWritesRoundTrips(t *testing.T) {
	dsn := testdb.DSN(t, eventfold.Postgres)
	for _, tc := range []struct {
		deferred, ids bool
		want          int64
	}{{false, false, 3}, {true, false, 2}, {false, true, 4}, {true, true, 3}} {
		t.Run(fmt.Sprintf("deferred=%v/ids=%v", tc.deferred, tc.ids), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg, err := pgxpool.ParseConfig(dsn)
			require.NoError(t, err)
			var writes atomic.Int64
			dialer := &net.Dialer{}
			cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return countingConn{Conn: c, writes: &writes}, nil
			}
			cfg.MaxConns = 1
			pool, err := pgxpool.NewWithConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(pool.Close)
			_, err = pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS dw_rt (id text PRIMARY KEY, n int NOT NULL)`)
			require.NoError(t, err)
			o := orchestrator.New(eventfold.New(pgxdriver.New(pool), nil), nil)
			orchestrator.Handle(o, "Deposit", func(ctx context.Context, tx pgx.Tx, c dwDeposit) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: "rt-" + c.Account, Expected: eventfold.Any, Type: "Deposited", Data: c}}, nil
			})
			var opts []orchestrator.ReducerOption
			if tc.deferred {
				opts = append(opts, orchestrator.WithDeferredWrites())
			}
			orchestrator.Reduce(o, "Deposited", func(ctx context.Context, tx pgx.Tx, ev eventfold.Event, c dwDeposit) error {
				_, err := tx.Exec(ctx, `INSERT INTO dw_rt (id, n) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET n = dw_rt.n + EXCLUDED.n`, c.Account, c.Amount)
				return err
			}, opts...)
			run := fmt.Sprintf("%v-%v-%d", tc.deferred, tc.ids, time.Now().UnixNano())
			dispatch := func(i int) {
				env := orchestrator.Envelope{}
				if tc.ids {
					env.ID = fmt.Sprintf("%s-%d", run, i)
				}
				_, err := o.Dispatch(ctx, orchestrator.Command{Name: "Deposit", Payload: dwDeposit{Account: run, Amount: 1}, Envelope: env})
				require.NoError(t, err)
			}
			dispatch(0) // warm: prepared statements
			const n = 20
			before := writes.Load()
			for i := 1; i <= n; i++ {
				dispatch(i)
			}
			require.Equal(t, tc.want*n, writes.Load()-before)
			var sum int
			require.NoError(t, pool.QueryRow(ctx, `SELECT n FROM dw_rt WHERE id = $1`, run).Scan(&sum))
			require.Equal(t, n+1, sum)
		})
	}
}
