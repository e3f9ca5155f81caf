package esctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
)

func runRestore(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("restore", "--from FILE [flags]",
		`Puts the events of an archive file back into the hot table with their original global
positions, stream versions, ids and times, then lowers the archive watermark. The file is
verified (count and checksum) before anything is written; each batch is read back and
compared. Restore archives newest first (the one whose range ends at the watermark).
Interrupted? Run it again: events already back are skipped.
Restore into the database the archive was taken from (positions are that database's):
an archive whose header names another dialect or another store identity is refused
unless --force (for instance after moving the store to a new database by hand).
Positions at or above the watermark were never archived: restore only checks that the log
holds the archive's events there, and refuses a file that has others, unless --force.`,
		`  esctl restore --from /backup/events-2024.jsonl.gz`)
	force := fs.Bool("force", false, "restore even if the archive names another store identity or dialect, or holds events above the archive watermark that the log lacks")
	from := fs.String("from", "", "the archive file (required)")
	batch := fs.Int("batch", 1000, "events inserted per transaction")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *from == "" {
		return usagef("restore: --from FILE is required")
	}
	if *batch < 1 {
		return usagef("restore: --batch %d must be at least 1", *batch)
	}
	h, total, err := verifyArchive(*from)
	if err != nil {
		return err
	}
	store, err := env.openWritable(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if err := checkArchiveOrigin(ctx, env, store, *from, h, *force); err != nil {
		return err
	}
	ao := store.Driver().Ops()
	w, err := ao.ArchivedBefore(ctx)
	if err != nil {
		return fmt.Errorf("read the archive watermark: %w", err)
	}
	if h.Before < w {
		return fmt.Errorf("%s holds positions [%d, %d), but everything below %d is archived: restore the newer archive (the one ending at %d) first", *from, h.From, h.Before, w, w)
	}
	r, err := openArchive(*from)
	if err != nil {
		return err
	}
	defer r.close()
	bar := env.progress("restore", total)
	var inserted int64
	for {
		evs := make([]eventfold.Event, 0, *batch)
		eof := false
		for len(evs) < *batch {
			e, err := r.next()
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return err
			}
			evs = append(evs, e)
		}
		if len(evs) > 0 {
			limit := w
			if *force {
				limit = math.MaxInt64 // the operator vouches for every position
			}
			var n int64
			for attempt := 1; ; attempt++ {
				// A deadlock with a concurrent restore of the same file
				// (MariaDB) rolls the batch back whole: try it again.
				n, err = restoreBatch(ctx, store, evs, limit)
				if err == nil || !errors.Is(err, eventfold.ErrTransient) || attempt == 5 {
					break
				}
				time.Sleep(time.Duration(attempt) * 20 * time.Millisecond)
			}
			if err != nil {
				return fmt.Errorf("restore positions [%d, %d]: %w", evs[0].GlobalPosition, evs[len(evs)-1].GlobalPosition, err)
			}
			inserted += n
			bar.add(int64(len(evs)))
		}
		if eof {
			break
		}
	}
	bar.finish()
	if w > h.From {
		// Only from w, as archive raises it (see there).
		ok, err := ao.SwapArchivedBefore(ctx, w, h.From)
		if err != nil {
			return fmt.Errorf("lower the archive watermark to %d: %w", h.From, err)
		}
		if now, _ := ao.ArchivedBefore(ctx); !ok && now > h.From {
			// (A concurrent restore of the same file that lowered it as
			// far is no failure.)
			return fmt.Errorf("restored %d events from %s, but the archive watermark moved from %d to %d meanwhile (another archive or restore ran at the same time), so it was left there and the restored events stay hidden below it; run restore again", inserted, *from, w, now)
		}
		w = h.From
	}
	fmt.Fprintf(env.Stdout, "restored %d events (%d already present) from %s, positions [%d, %d); archive watermark now %d\n",
		inserted, total-inserted, *from, h.From, h.Before, w)
	return nil
}

// restoreBatch inserts the events of one batch that lie below the archive
// watermark w (read before the restore began) and reads the whole batch
// back in the same transaction: the hot table must then hold exactly these
// events there. Events at or above w are never inserted, only checked:
// that part of the log was never archived, readers and subscriptions may
// have passed it already, so an event there that the log does not hold
// (a file edited or forged by hand: its checksum proves nothing about
// where its events came from) would appear in the past, and its stream
// version would move the stream's.
func restoreBatch(ctx context.Context, store *eventfold.Store[*sql.Tx], evs []eventfold.Event, w int64) (int64, error) {
	var n int64
	err := store.InTx(ctx, func(tx *sql.Tx) error {
		ops := store.Driver().OpsTx(tx)
		below := evs
		for i, e := range evs {
			if e.GlobalPosition >= w {
				below = evs[:i]
				break
			}
		}
		if len(below) > 0 {
			var err error
			if n, err = ops.RestoreEvents(ctx, below); err != nil {
				return err
			}
		}
		lo, hi := evs[0].GlobalPosition, evs[len(evs)-1].GlobalPosition
		got, err := store.Driver().OpsTx(tx).ReadAll(ctx, lo, len(evs)+1) // raw: below the watermark until restore lowers it
		if err != nil {
			return err
		}
		i := 0
		for _, g := range got {
			if g.GlobalPosition > hi {
				break
			}
			if i < len(evs) && g.GlobalPosition > evs[i].GlobalPosition && evs[i].GlobalPosition >= w {
				return notLive(evs[i], w)
			}
			if i >= len(evs) || g.GlobalPosition != evs[i].GlobalPosition || g.ID != evs[i].ID ||
				g.StreamID != evs[i].StreamID || g.StreamVersion != evs[i].StreamVersion {
				return fmt.Errorf("position %d holds event %s (%s v%d), not the archived one: refusing to restore over it",
					g.GlobalPosition, g.ID, g.StreamID, g.StreamVersion)
			}
			i++
		}
		if i != len(evs) {
			if evs[i].GlobalPosition >= w {
				return notLive(evs[i], w)
			}
			return fmt.Errorf("read back %d of %d restored events", i, len(evs))
		}
		return nil
	})
	return n, err
}

// notLive refuses an archived event at or above the archive watermark w
// that the live log does not hold.
func notLive(e eventfold.Event, w int64) error {
	return fmt.Errorf("the archive holds event %s (%s v%d) at position %d, at or above the archive watermark %d, and the log holds no such event there: archives hold only positions below the watermark, so this file was not written by esctl archive from this log; refusing to insert it (--force inserts it, if this database really continues the archive's log)",
		e.ID, e.StreamID, e.StreamVersion, e.GlobalPosition, w)
}

// ErrForeignArchive is matched by the error of a restore refused because
// the archive's header names another dialect or another store identity.
var ErrForeignArchive = errors.New("archive belongs to another store")

// checkArchiveOrigin refuses an archive taken from another store: its
// positions, versions and ids belong to that store's log, and inserting
// them here would mix two logs. --force overrides it (the operator moved
// the store by hand and knows the positions are this store's).
func checkArchiveOrigin(ctx context.Context, env *Env, store *eventfold.Store[*sql.Tx], path string, h archiveHeader, force bool) error {
	id, err := store.Identity(ctx)
	if err != nil {
		return err
	}
	var diffs []string
	if h.Dialect != string(store.Dialect()) {
		diffs = append(diffs, fmt.Sprintf("the archive is from a %s database, this one is %s", h.Dialect, store.Dialect()))
	}
	switch {
	case h.StoreID == "":
		// Written before archives named their store: nothing to compare.
		fmt.Fprintf(env.Stderr, "note: %s names no store identity (written before migration 00009); its origin cannot be checked\n", path)
	case id == "":
		diffs = append(diffs, fmt.Sprintf("the archive is of store %s, this database has no store identity (migration 00009 not applied)", h.StoreID))
	case h.StoreID != id:
		diffs = append(diffs, fmt.Sprintf("the archive is of store %s, this database is store %s", h.StoreID, id))
	}
	if len(diffs) == 0 {
		return nil
	}
	msg := strings.Join(diffs, "; ")
	if !force {
		return fmt.Errorf("%w: refusing to restore %s: %s. Restore it into the store it was archived from, or pass --force if this database really continues that log", ErrForeignArchive, path, msg)
	}
	fmt.Fprintf(env.Stderr, "warning: --force: restoring %s although %s\n", path, msg)
	return nil
}
