package esctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
)

// testHooks inject failures into resumable work, for tests.
type testHooks struct {
	// afterArchiveBatch runs after each committed deletion batch (1-based).
	afterArchiveBatch func(batch int) error
	// telemetry replaces StartTelemetry (a pipeline with a manual reader).
	telemetry func(ctx context.Context, getenv func(string) string) (*Telemetry, error)
}

func runArchive(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("archive", "--before POS|TIME --to FILE [flags]",
		`Moves the oldest events out of the hot table into a gzip-compressed JSON-lines file.
It writes FILE.partial, reads it back to check the event count and checksum, renames it
to FILE, raises the archive watermark (reads below it then fail with "archived"), and
only then deletes the events, in batches, each checked against the file.

--before POS archives every event below global position POS. --before TIME (RFC 3339, or
YYYY-MM-DD for midnight UTC) archives the longest start of the log whose events were all
recorded before TIME. Archives always remove a prefix of the log; a second archive
continues where the previous one ended.

Interrupted (crash, Ctrl-C)? Run the same command again: an existing FILE that verifies
is reused and the deletion resumes; nothing is lost or deleted twice.
Stream versions are not reset: appends continue from each stream's current version.`,
		`  esctl archive --before 2025-01-01 --to /backup/events-2024.jsonl.gz
  esctl archive --before 500000 --to events-0-500000.jsonl.gz --batch 5000`)
	before := fs.String("before", "", "archive events below this global position, or recorded before this time (required)")
	to := fs.String("to", "", "the archive file to write (required)")
	batch := fs.Int("batch", 1000, "events deleted per transaction")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *before == "" || *to == "" {
		return usagef("archive: --before and --to are required (see '%s archive --help')", env.Program)
	}
	if *batch < 1 {
		return usagef("archive: --batch %d must be at least 1", *batch)
	}
	pos, at, err := parseBefore(*before)
	if err != nil {
		return err
	}
	store, err := env.openWritable(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	a := &archiver{env: env, store: store, path: *to, batch: *batch}
	return a.run(ctx, pos, at)
}

// parseBefore reads --before: a position, or a time.
func parseBefore(s string) (int64, time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 1 {
			return 0, time.Time{}, usagef("archive: --before %d: a global position is at least 1", n)
		}
		return n, time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return 0, t.UTC(), nil
		}
	}
	return 0, time.Time{}, usagef("archive: --before %q is neither a global position nor a time (RFC 3339 or YYYY-MM-DD)", s)
}

type archiver struct {
	env   *Env
	store *eventfold.Store[*sql.Tx]
	path  string
	batch int
}

func (a *archiver) ops() contract.Archive { return a.store.Driver().Ops() }

func (a *archiver) run(ctx context.Context, pos int64, at time.Time) error {
	ao := a.ops()
	w, err := ao.ArchivedBefore(ctx)
	if err != nil {
		return fmt.Errorf("read the archive watermark (is migration 00004 applied? run 'migrate up'): %w", err)
	}
	var h archiveHeader
	resumed := false // FILE existed: its header, not --before, fixed the range
	switch _, statErr := os.Stat(a.path); {
	case statErr == nil:
		// A previous run got as far as renaming the file: resume it.
		var n int64
		h, n, err = verifyArchive(a.path)
		if err != nil {
			return fmt.Errorf("%s exists and is not a complete archive (%v); refusing to overwrite it: choose another --to, or move it away", a.path, err)
		}
		if h.From > w || (h.Before > w && h.From != w) {
			return fmt.Errorf("%s holds positions [%d, %d) but the log's archive watermark is %d: it is not the archive of this database's next range; refusing to delete anything", a.path, h.From, h.Before, w)
		}
		fmt.Fprintf(a.env.Stderr, "resuming: %s holds %d events, positions [%d, %d)\n", a.path, n, h.From, h.Before)
		resumed = true
	case errors.Is(statErr, os.ErrNotExist):
		before, err := a.resolveBefore(ctx, ao, pos, at)
		if err != nil {
			return err
		}
		if before <= w {
			fmt.Fprintf(a.env.Stdout, "nothing to archive: events before position %d are already archived\n", w)
			return nil
		}
		id, err := a.store.Identity(ctx)
		if err != nil {
			return err
		}
		if id == "" {
			return fmt.Errorf("this database has no store identity (migration 00009 is not applied): run 'migrate up' first, so that the archive names the store it belongs to")
		}
		h = archiveHeader{From: w, Before: before, Dialect: string(a.store.Dialect()), StoreID: id, CreatedAt: time.Now().UTC()}
		n, err := a.write(ctx, h)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted while writing %s (%w): nothing was deleted and the archive watermark is unchanged; running the same command again starts over", a.path, err)
			}
			return err
		}
		if n == 0 {
			os.Remove(a.path)
			fmt.Fprintf(a.env.Stdout, "nothing to archive: no events in [%d, %d)\n", w, before)
			return nil
		}
	default:
		return fmt.Errorf("archive file: %w", statErr)
	}
	if w < h.Before {
		// From here on, reads below h.Before report "archived", even while
		// deletion is still under way: the file is the source of truth.
		// Only from w: had another archive or restore moved the watermark
		// since this run read it, setting it here would overwrite theirs
		// (two overlapping runs left it at the lower range while both
		// deleted, so reads silently skipped what the higher one deleted).
		ok, err := ao.SwapArchivedBefore(ctx, w, h.Before)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted while raising the archive watermark to %d (%w): %s is complete and nothing was deleted; run the same command again: it resumes from the file", h.Before, err, a.path)
			}
			return fmt.Errorf("raise the archive watermark to %d: %w", h.Before, err)
		}
		if !ok {
			now, _ := ao.ArchivedBefore(ctx)
			removed := ""
			if !resumed {
				os.Remove(a.path) // this run wrote it, and nothing of it was applied
				removed = " and the file was removed"
			}
			return fmt.Errorf("the archive watermark moved from %d to %d while this run was writing %s (another archive or restore ran at the same time): nothing was deleted%s; run archive again",
				w, now, a.path, removed)
		}
	}
	deleted, err := a.deleteArchived(ctx, h)
	if err != nil {
		if ctx.Err() != nil {
			// Each batch deletes in its own transaction, after checking its
			// events against the file: what is left is deleted by a rerun.
			return fmt.Errorf("interrupted after deleting %d events from the hot table (%w): %s is complete and reads below position %d already report archived; run the same command again to delete the rest: it resumes from the file",
				deleted, err, a.path, h.Before)
		}
		return err
	}
	if resumed {
		// FILE fixed the range; if --before asks for more (FILE is an
		// earlier archive, or new events match a time), saying "archived"
		// and exiting 0 would let a script believe those were moved out.
		if want, err := a.resolveBefore(ctx, ao, pos, at); err == nil && want > h.Before {
			return fmt.Errorf("%s holds positions [%d, %d) and that range is now archived (%d events deleted by this run); events from %d up to --before were not archived: choose a new --to for the next range", a.path, h.From, h.Before, deleted, h.Before)
		}
	}
	fmt.Fprintf(a.env.Stdout, "archived positions [%d, %d) to %s; deleted %d events from the hot table; reads below %d now report archived\n",
		h.From, h.Before, a.path, deleted, h.Before)
	return nil
}

// resolveBefore turns --before into a position, never beyond head+1: an
// event below the watermark that committed after the archive was written
// would otherwise be lost.
func (a *archiver) resolveBefore(ctx context.Context, ao contract.Archive, pos int64, at time.Time) (int64, error) {
	head, err := a.store.Head(ctx)
	if err != nil {
		return 0, err
	}
	if !at.IsZero() {
		p, err := ao.FirstPositionRecordedAt(ctx, at)
		if err != nil {
			return 0, fmt.Errorf("find the first event recorded at or after %s: %w", at.Format(time.RFC3339), err)
		}
		if p == 0 {
			p = head + 1
		}
		pos = p
	}
	if pos > head+1 {
		pos = head + 1
	}
	return pos, nil
}

// write streams [h.From, h.Before) into FILE.partial, reads it back to
// check count and checksum, and renames it to FILE.
func (a *archiver) write(ctx context.Context, h archiveHeader) (int64, error) {
	aw, err := createArchive(a.path, h)
	if err != nil {
		return 0, err
	}
	bar := a.env.progress("archive: writing", 0)
	from := h.From
	for {
		evs, err := a.store.Driver().Ops().ReadAll(ctx, from, pageSize) // raw: a resumed run reads below the watermark it raised
		if err != nil {
			aw.abort()
			return 0, err
		}
		stop := len(evs) < pageSize
		for _, e := range evs {
			if e.GlobalPosition >= h.Before {
				stop = true
				break
			}
			if err := aw.add(e); err != nil {
				aw.abort()
				return 0, err
			}
			bar.add(1)
		}
		if stop {
			break
		}
		from = evs[len(evs)-1].GlobalPosition + 1
	}
	bar.finish()
	t, err := aw.close()
	if err != nil {
		aw.abort()
		return 0, err
	}
	// Read back what is on disk before anything is deleted.
	vh, n, err := verifyArchive(a.path + ".partial")
	if err != nil {
		aw.abort()
		return 0, fmt.Errorf("verify %s.partial: %w", a.path, err)
	}
	if n != t.Count || vh.From != h.From || vh.Before != h.Before {
		aw.abort()
		return 0, fmt.Errorf("verify %s.partial: read back %d events of [%d, %d), wrote %d of [%d, %d)", a.path, n, vh.From, vh.Before, t.Count, h.From, h.Before)
	}
	if t.Count == 0 {
		aw.abort()
		return 0, nil
	}
	return t.Count, aw.commit()
}

// deleteArchived deletes [h.From, h.Before) from the hot table in batches
// that follow the file: each batch deletes the positions between the
// previous batch and its last event, after checking in the same
// transaction that every event still there is in the file, unchanged.
// Re-running it after a crash deletes only what is left.
func (a *archiver) deleteArchived(ctx context.Context, h archiveHeader) (int64, error) {
	r, err := openArchive(a.path)
	if err != nil {
		return 0, err
	}
	defer r.close()
	_, total, err := verifyArchive(a.path)
	if err != nil {
		return 0, err
	}
	bar := a.env.progress("archive: deleting", total)
	var deleted int64
	lo := h.From
	for n := 1; ; n++ {
		batch := make(map[int64]string, a.batch)
		hi := lo - 1
		eof := false
		for len(batch) < a.batch {
			e, err := r.next()
			if err == io.EOF {
				eof = true
				break
			}
			if err != nil {
				return deleted, err
			}
			batch[e.GlobalPosition] = e.ID
			hi = e.GlobalPosition
		}
		if eof {
			hi = h.Before - 1 // the last batch reaches the end of the range
		}
		if hi >= lo {
			var nd int64
			err := a.store.InTx(ctx, func(tx *sql.Tx) error {
				evs, err := a.store.Driver().OpsTx(tx).ReadAll(ctx, lo, len(batch)+1) // raw: below the watermark by design
				if err != nil {
					return err
				}
				present := 0
				for _, e := range evs {
					if e.GlobalPosition > hi {
						break
					}
					if id, ok := batch[e.GlobalPosition]; !ok || id != e.ID {
						return fmt.Errorf("event at position %d (id %s) is not in %s: refusing to delete it", e.GlobalPosition, e.ID, a.path)
					}
					present++
				}
				if present == 0 {
					return nil
				}
				ao := a.store.Driver().OpsTx(tx)
				nd, err = ao.DeleteEventRange(ctx, lo, hi)
				return err
			})
			if err != nil {
				return deleted, fmt.Errorf("delete archived events [%d, %d]: %w", lo, hi, err)
			}
			deleted += nd
			bar.add(int64(len(batch)))
			if hk := a.env.opts.hooks; hk != nil && hk.afterArchiveBatch != nil {
				if err := hk.afterArchiveBatch(n); err != nil {
					return deleted, err
				}
			}
		}
		if eof {
			break
		}
		lo = hi + 1
	}
	bar.finish()
	return deleted, nil
}
