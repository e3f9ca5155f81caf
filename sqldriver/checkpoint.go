package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"time"
)

// SQLite in WAL mode copies the WAL back into the database file at a
// checkpoint: by default the connection whose COMMIT takes the WAL past
// 1,000 frames does it, inside that COMMIT, fsync of the WAL and of the
// database file included (10-30 ms each time on the benchmark machine).
// Eventfold's writers queue for SQLite's one write lock in the process
// (Driver.Begin) and group commit runs one committer, so every writer
// waited for each such checkpoint; a hand-written client on 16 connections
// did not (the checkpoint runs after SQLite's write lock is released, and
// the other connections write meanwhile).
//
// A Driver made by Open therefore checkpoints from a connection of its
// own, in the background, with PASSIVE checkpoints, which block neither
// writers nor readers, and the connector raises wal_autocheckpoint to
// registry.SQLiteAutoCheckpoint frames. A committing connection still
// checkpoints when the WAL reaches that size: the WAL starts over (instead
// of growing) only when a checkpoint has copied every frame by the time
// the next write begins, which a checkpoint running beside a continuous
// stream of commits never achieves. That checkpoint then copies only what
// the background one left, and comes once per 4,000 frames instead of
// 1,000. (Finishing it in the background with the Driver's writers held
// was tried: its fsyncs cost the writers as much as the committing
// connection's checkpoint does, and it came once per ~1,000 frames.)

// Intervals between two background checkpoints: the shortest while
// commits add frames, doubled up to the longest while the WAL stays as it
// was.
const (
	checkpointMinInterval = 20 * time.Millisecond
	checkpointMaxInterval = time.Second
)

// walCheckpointer runs PASSIVE checkpoints on a connection of its own
// until closed.
type walCheckpointer struct {
	db     *sql.DB
	cancel context.CancelFunc
	done   chan struct{}
}

// startWALCheckpointer opens one connection with c and checkpoints from
// it in a goroutine of its own.
func startWALCheckpointer(c driver.Connector) *walCheckpointer {
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	ctx, cancel := context.WithCancel(context.Background())
	w := &walCheckpointer{db: db, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

func (w *walCheckpointer) run(ctx context.Context) {
	defer close(w.done)
	interval := checkpointMinInterval
	t := time.NewTimer(interval)
	defer t.Stop()
	lastLog, lastDone := -1, -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		log, done, err := w.checkpoint(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Locked by another process (locking_mode=EXCLUSIVE), read only,
			// ...: the committing connections still checkpoint.
			interval = checkpointMaxInterval
		case log < 0:
			return // not in WAL mode: nothing to checkpoint, ever
		case log == lastLog && done == lastDone:
			interval = min(2*interval, checkpointMaxInterval) // nothing new
		default:
			interval = checkpointMinInterval
		}
		lastLog, lastDone = log, done
		t.Reset(interval)
	}
}

// checkpoint runs one PASSIVE checkpoint and returns the WAL's frames
// (-1 when the database is not in WAL mode) and how many of them are in
// the database file now.
func (w *walCheckpointer) checkpoint(ctx context.Context) (log, done int, err error) {
	var busy int // 1 when another checkpoint was running
	err = w.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
	return log, done, err
}

// close stops the checkpointer and closes its connection.
func (w *walCheckpointer) close() error {
	w.cancel()
	<-w.done
	return w.db.Close()
}
