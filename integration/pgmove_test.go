package integration

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/internal/testdb"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/orchestrator"
	"github.com/eventfold/eventfold/sqldriver"
)

// pgBin is where Debian's postgresql-15 package keeps initdb and pg_ctl.
const pgBin = "/usr/lib/postgresql/15/bin"

// newCluster starts a throwaway PostgreSQL cluster (initdb + pg_ctl, owned
// by the postgres OS user, in a temp dir, on a free port) and returns its
// server DSN (eventfold URL form, no database). It is stopped and deleted
// when the test ends, failed or not.
func newCluster(t *testing.T) (server string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if testdb.Required(eventfold.Postgres) {
			t.Fatalf("a second cluster needs %s/initdb: %v", pgBin, err)
		}
		t.Skipf("no %s/initdb: %v", pgBin, err)
	}
	pg, err := user.Lookup("postgres")
	require.NoError(t, err, "initdb refuses to run as root: the postgres OS user is needed")
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	dir, err := os.MkdirTemp("", "eventfold-pgmove-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chown(dir, uid, gid))
	data := filepath.Join(dir, "data")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())

	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...).CombinedOutput()
		require.NoError(t, err, "%v: %s", args, out)
	}
	run(filepath.Join(pgBin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")
	run(filepath.Join(pgBin, "pg_ctl"), "-D", data, "-l", filepath.Join(dir, "log"), "-w",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off", port, dir), "start")
	// Registered after RemoveAll, so it runs before it (cleanups are LIFO).
	t.Cleanup(func() {
		out, err := exec.Command("runuser", "-u", "postgres", "--",
			filepath.Join(pgBin, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop").CombinedOutput()
		if err != nil {
			t.Logf("stop the second cluster: %v: %s", err, out)
		}
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/", port)
}

// pgTool runs pg_dump or psql (libpq reads the URL DSN directly).
func pgTool(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(filepath.Join(pgBin, name), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "%s: %s", name, stderr.String())
	return out
}

// runSubscription drives subscription name until it has checkpointed
// position want, and returns the events it handled.
func runSubscription(t *testing.T, store *eventfold.Store[*sql.Tx], name string, want int64) []eventfold.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []eventfold.Event
	sub, err := listener.New(store, name, func(_ context.Context, ev eventfold.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, ev)
		return nil
	}, &listener.Options{PollInterval: 10 * time.Millisecond, Owner: "pgmove-test", CheckpointInterval: time.Millisecond})
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- sub.Run(ctx) }()
	for {
		pos, _, err := listener.Checkpoint(ctx, store, name)
		require.NoError(t, err)
		if pos >= want {
			break
		}
		select {
		case <-ctx.Done():
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("subscription %s: checkpoint %d after %d events, want %d", name, pos, len(got), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	return got
}

// TestPostgresMoveToNewCluster moves a database with pg_dump/psql into a
// second, fresh cluster (its transaction ids restart low) while a
// subscription is checkpointed at the head, and checks, for each way the
// store can notice (Migrate, the first Append, esctl doctor, the SQL
// function), that readers see every restored event, new events land above
// the old head and reach the subscription, and concurrent appends never
// collide.
func TestPostgresMoveToNewCluster(t *testing.T) {
	ctx := context.Background()
	srcDSN := testdb.DSN(t, eventfold.Postgres)
	src := openStore(t, srcDSN)
	ageCluster(t, srcDSN, 20000)
	for i := 0; i < 30; i++ {
		mustAppend(t, src, fmt.Sprintf("acct-%d", i%3), eventfold.Any, ev("Deposited", fmt.Sprintf(`{"n": %d}`, i)))
	}
	last, err := src.LastPosition(ctx)
	require.NoError(t, err)
	oldHead, err := src.WaitHead(ctx, last)
	require.NoError(t, err)
	oldEvents, err := src.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Len(t, oldEvents, 30)
	require.Equal(t, oldHead, oldEvents[29].GlobalPosition)
	require.Len(t, runSubscription(t, src, "billing", oldHead), 30)

	dump := pgTool(t, nil, "pg_dump", "--no-owner", "--no-privileges", "-d", srcDSN)
	server := newCluster(t)

	restore := func(t *testing.T, db string) (dsn string) {
		pgTool(t, nil, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server+"postgres", "-c", "CREATE DATABASE "+db)
		dsn = server + db + "?sslmode=disable"
		pgTool(t, dump, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", server+db)
		return dsn
	}

	// check is what must hold after the store repaired itself, however.
	check := func(t *testing.T, store *eventfold.Store[*sql.Tx], alreadyAppended int) {
		t.Helper()
		again, err := store.CheckPositions(ctx, true)
		require.NoError(t, err)
		require.False(t, again.Moved, "a second repair must find nothing: %s", again.Message)
		require.False(t, again.Repaired)

		// Concurrent appends: none collides, all land above the old head.
		const writers, each = 8, 5
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					evs, err := store.Append(ctx, fmt.Sprintf("new-%d", w), eventfold.Any, ev("Moved", `{}`))
					if err == nil && evs[0].GlobalPosition <= oldHead {
						err = fmt.Errorf("new event at %d, not above the old head %d", evs[0].GlobalPosition, oldHead)
					}
					if err != nil {
						errs <- err
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		newCount := writers*each + alreadyAppended
		last, err := store.LastPosition(ctx)
		require.NoError(t, err)
		_, err = store.WaitHead(ctx, last)
		require.NoError(t, err)

		all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
		require.NoError(t, err)
		require.Len(t, all, 30+newCount, "readers must see every restored event and every new one")
		for i := range oldEvents {
			require.Equal(t, oldEvents[i].GlobalPosition, all[i].GlobalPosition)
			require.Equal(t, oldEvents[i].ID, all[i].ID)
		}
		for i := 1; i < len(all); i++ {
			require.Greater(t, all[i].GlobalPosition, all[i-1].GlobalPosition)
		}
		got := runSubscription(t, store, "billing", all[len(all)-1].GlobalPosition)
		require.Len(t, got, newCount, "the subscription checkpointed at the old head gets exactly the new events")
		for _, e := range got {
			require.Greater(t, e.GlobalPosition, oldHead)
		}
	}

	// beforeRepair shows the damage the store must notice: no restored event
	// readable, a refused raw append.
	beforeRepair := func(t *testing.T, store *eventfold.Store[*sql.Tx]) {
		t.Helper()
		evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
		require.NoError(t, err)
		require.Empty(t, evs, "before the repair the restored events sit above the new cluster's horizon")
		res, err := store.CheckPositions(ctx, false)
		require.NoError(t, err)
		require.True(t, res.Moved, res.Message)
		require.False(t, res.Repaired)
		require.Equal(t, oldHead, res.LastPosition)
		_, err = store.Driver().DB().ExecContext(ctx, `SELECT * FROM eventfold.append_events('raw', -1, ARRAY[gen_random_uuid()], ARRAY['Raw'], ARRAY['{}']::jsonb[], ARRAY['{}']::jsonb[])`)
		require.ErrorContains(t, err, "EF002", "a DBA's direct append must be refused, not written below the log")
	}

	t.Run("migrate", func(t *testing.T) {
		store := openStore(t, restore(t, "moved_migrate"))
		beforeRepair(t, store)
		require.NoError(t, store.Migrate(ctx))
		check(t, store, 0)
	})

	t.Run("first append", func(t *testing.T) {
		store := openStore(t, restore(t, "moved_append"))
		beforeRepair(t, store)
		evs, err := store.Append(ctx, "first", eventfold.NoStream, ev("First", `{}`))
		require.NoError(t, err, "Append repairs and retries by itself")
		require.Greater(t, evs[0].GlobalPosition, oldHead)
		check(t, store, 1)
	})

	t.Run("append in a transaction", func(t *testing.T) {
		store := openStore(t, restore(t, "moved_appendtx"))
		beforeRepair(t, store)
		var first []eventfold.Event
		var attempts int
		for attempts = 1; attempts <= 20; attempts++ {
			err := store.InTx(ctx, func(tx *sql.Tx) error {
				var err error
				first, err = store.AppendTx(ctx, tx, "first", eventfold.Any, ev("First", `{}`))
				return err
			})
			if err == nil {
				break
			}
			require.ErrorIs(t, err, eventfold.ErrPositionsBehind)
			require.ErrorIs(t, err, eventfold.ErrTransient, "so that the orchestrator retries")
			time.Sleep(20 * time.Millisecond)
		}
		require.Greater(t, first[0].GlobalPosition, oldHead, "after %d attempts", attempts)
		check(t, store, 1)
	})

	for _, gc := range []*orchestrator.GroupCommitConfig{nil, {Committers: 2}} {
		t.Run(fmt.Sprintf("orchestrator group commit %v", gc != nil), func(t *testing.T) {
			store := openStore(t, restore(t, fmt.Sprintf("moved_orch_%v", gc != nil)))
			beforeRepair(t, store)
			o := orchestrator.New(store, &orchestrator.Config{GroupCommit: gc})
			orchestrator.HandleAny(o, "Open", func(_ context.Context, _ *sql.Tx, cmd orchestrator.Command) ([]orchestrator.Emit, error) {
				return []orchestrator.Emit{{Stream: cmd.Envelope.ID, Type: "Opened", Data: json.RawMessage(`{}`)}}, nil
			})
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					res, err := o.Dispatch(ctx, orchestrator.Command{Name: "Open", Envelope: orchestrator.Envelope{ID: fmt.Sprintf("open-%d", i)}})
					if err == nil && res.Events[0].GlobalPosition <= oldHead {
						err = fmt.Errorf("event at %d, not above the old head %d", res.Events[0].GlobalPosition, oldHead)
					}
					if err != nil {
						errs <- err
					}
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err, "dispatch retries until the background repair is done")
			}
			check(t, store, 8)
		})
	}

	t.Run("esctl doctor", func(t *testing.T) {
		dsn := restore(t, "moved_doctor")
		store := openStore(t, dsn)
		beforeRepair(t, store)
		var out, errOut bytes.Buffer
		code := esctl.Main(ctx, []string{"--dsn", dsn, "doctor"}, &out, &errOut, esctl.Options{})
		require.Equal(t, 1, code, "doctor must fail while a repair is needed: %s %s", out.String(), errOut.String())
		require.Contains(t, out.String(), "positions need repair")
		out.Reset()
		errOut.Reset()
		code = esctl.Main(ctx, []string{"--dsn", dsn, "doctor", "--repair"}, &out, &errOut, esctl.Options{})
		require.Equal(t, 0, code, "%s %s", out.String(), errOut.String())
		require.Contains(t, out.String(), "positions repaired")
		out.Reset()
		code = esctl.Main(ctx, []string{"--dsn", dsn, "doctor"}, &out, &errOut, esctl.Options{})
		require.Equal(t, 0, code, "%s %s", out.String(), errOut.String())
		require.Contains(t, out.String(), "positions ok")
		check(t, store, 0)
	})

	t.Run("esctl migrate up", func(t *testing.T) {
		dsn := restore(t, "moved_esctl_migrate")
		store := openStore(t, dsn)
		beforeRepair(t, store)
		var out, errOut bytes.Buffer
		code := esctl.Main(ctx, []string{"--dsn", dsn, "migrate", "up"}, &out, &errOut, esctl.Options{})
		require.Equal(t, 0, code, "%s %s", out.String(), errOut.String())
		require.Contains(t, out.String(), "positions repaired", "migrate up must say what it did")
		check(t, store, 0)
	})

	t.Run("sql function", func(t *testing.T) {
		store := openStore(t, restore(t, "moved_sql"))
		beforeRepair(t, store)
		var moved, repaired bool
		var msg string
		require.NoError(t, store.Driver().DB().QueryRowContext(ctx,
			`SELECT moved, repaired, message FROM eventfold.check_positions(true)`).Scan(&moved, &repaired, &msg))
		require.True(t, moved, msg)
		require.True(t, repaired, msg)
		check(t, store, 0)
	})
}

func openStore(t *testing.T, dsn string) *eventfold.Store[*sql.Tx] {
	t.Helper()
	drv, err := sqldriver.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return eventfold.New(drv, nil)
}

// TestPostgresPositionsMigration upgrades a schema at version 4 holding
// events to 00006: the events stay readable, new ones land above them, the
// check finds nothing to repair, and the down migration works while the
// offset is 0 and refuses once a repair has raised it.
func TestPostgresPositionsMigration(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.EmptyDSN(t, eventfold.Postgres)
	store := openStore(t, dsn)
	db := store.Driver().DB()
	p, err := eventfold.NewMigrator(eventfold.Postgres, db)
	require.NoError(t, err)
	_, err = p.UpTo(ctx, 4)
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		_, err := db.ExecContext(ctx, `SELECT * FROM eventfold.append_events('old', -1, ARRAY[gen_random_uuid()], ARRAY['Old'], ARRAY['{"b":1, "a":2}']::jsonb[], ARRAY['{}']::jsonb[])`)
		require.NoError(t, err)
	}
	require.NoError(t, store.Migrate(ctx))
	res, err := store.CheckPositions(ctx, false)
	require.NoError(t, err)
	require.True(t, res.Applicable)
	require.False(t, res.Moved, res.Message)
	require.Zero(t, res.NewOffset)

	// The previous release's query (sqlc's AppendEvents of 00001) must keep
	// working during a rolling upgrade.
	var oldPos int64
	require.NoError(t, db.QueryRowContext(ctx, `SELECT a.global_position::bigint
		FROM eventfold.append_events('old', -1, ARRAY[gen_random_uuid()], ARRAY['Old'], ARRAY['{}']::jsonb[], ARRAY['{}']::jsonb[])
		AS a(global_position, stream_version, recorded_at)`).Scan(&oldPos))

	evs := mustAppend(t, store, "new", eventfold.NoStream, ev("New", `{}`))
	require.Greater(t, evs[0].GlobalPosition, oldPos)
	_, err = store.WaitHead(ctx, evs[0].GlobalPosition)
	require.NoError(t, err)
	all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Len(t, all, 7)
	require.Equal(t, evs[0].ID, all[6].ID, "the new event comes after the old ones")
	require.Equal(t, `{"a": 2, "b": 1}`, string(all[0].Data))

	// Migrate runs at every start of every instance: on a database that
	// was not moved it must not wait for a long writing transaction (nor
	// stall appends behind one).
	longTx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = longTx.ExecContext(ctx, `SELECT * FROM eventfold.append_events('long', -1, ARRAY[gen_random_uuid()], ARRAY['Long'], ARRAY['{}']::jsonb[], ARRAY['{}']::jsonb[])`)
	require.NoError(t, err)
	quick, cancelQuick := context.WithTimeout(ctx, 5*time.Second)
	require.NoError(t, store.Migrate(quick), "Migrate must not wait for a writer when nothing was moved")
	cancelQuick()
	require.NoError(t, longTx.Rollback())

	_, err = p.DownTo(ctx, 4)
	require.NoError(t, err, "down to 4 with offset 0")
	_, err = db.ExecContext(ctx, `SELECT * FROM eventfold.append_events('old', -1, ARRAY[gen_random_uuid()], ARRAY['Old'], ARRAY['{}']::jsonb[], ARRAY['{}']::jsonb[])`)
	require.NoError(t, err, "the 00001 function is back")
	_, err = p.Up(ctx)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `SELECT setval('eventfold.position_offset', 5)`)
	require.NoError(t, err)
	_, err = p.DownTo(ctx, 4)
	require.ErrorContains(t, err, "the database was moved", "a down migration must not drop an offset in use")
}

// TestPostgresRepairUnderLoad simulates a restored log (one event far above
// anything this cluster's transaction ids give) and lets writers, which
// repair by themselves, race a tailing reader: every event must reach the
// reader, in strictly increasing positions above the restored one, and no
// append may fail. Run it many times (-count=50).
func TestPostgresRepairUnderLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	store := openStore(t, testdb.DSN(t, eventfold.Postgres))
	db := store.Driver().DB()
	var restored int64
	require.NoError(t, db.QueryRowContext(ctx, `
		INSERT INTO eventfold.events (global_position, stream_id, stream_version, event_id, event_type, data)
		VALUES (((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000000) << 20) + 7, 'restored', 1, gen_random_uuid(), 'Restored', '{}')
		RETURNING global_position`).Scan(&restored))
	_, err := db.ExecContext(ctx, `INSERT INTO eventfold.streams (stream_id, version) VALUES ('restored', 1)`)
	require.NoError(t, err)

	const writers, each = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := store.Append(ctx, fmt.Sprintf("w-%d", w), eventfold.Any, ev("Written", `{}`)); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	// The tailer continues from its last position + 1, as subscriptions do.
	var seen []int64
	from := int64(0)
	readerDone := make(chan error, 1)
	go func() {
		for len(seen) < 1+writers*each {
			evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: from})
			if err != nil {
				readerDone <- err
				return
			}
			for _, e := range evs {
				seen = append(seen, e.GlobalPosition)
				from = e.GlobalPosition + 1
			}
			if ctx.Err() != nil {
				readerDone <- fmt.Errorf("reader saw %d of %d events", len(seen), 1+writers*each)
				return
			}
			time.Sleep(time.Millisecond)
		}
		readerDone <- nil
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, <-readerDone)
	require.Equal(t, restored, seen[0])
	for i := 1; i < len(seen); i++ {
		require.Greater(t, seen[i], seen[i-1])
	}
	all, err := store.ReadAll(ctx, eventfold.ReadAllOptions{})
	require.NoError(t, err)
	require.Len(t, all, 1+writers*each, "nothing written that the tailer missed")
}

// ageCluster makes sure the source cluster's transaction ids are well
// above where a fresh cluster starts (a few hundred, plus what the restores
// use), as they are on any server that has been running for a while: on a
// server that testcontainers has just started they are not, and then the
// move would not put the restored events above the new cluster's horizon,
// which is the situation under test. It spends transaction ids on the
// server, one committed transaction each, until the counter reaches min.
func ageCluster(t *testing.T, dsn string, min int64) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer db.Close()
	var xid int64
	require.NoError(t, db.QueryRow("SELECT pg_current_xact_id()::text::bigint").Scan(&xid))
	if xid >= min {
		return
	}
	_, err = db.Exec(fmt.Sprintf(`DO $$
BEGIN
    FOR i IN 1..%d LOOP
        PERFORM pg_current_xact_id();
        COMMIT;
    END LOOP;
END $$`, min-xid))
	require.NoError(t, err)
}
