package esctl

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"

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
unless --force (for instance after moving the store to a new database by hand).`,
		`  esctl restore --from /backup/events-2024.jsonl.gz`)
	force := fs.Bool("force", false, "restore even if the archive names another store identity or dialect")
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
	store, err := env.Open(ctx)
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
			n, err := restoreBatch(ctx, store, evs)
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
		if err := ao.SetArchivedBefore(ctx, h.From); err != nil {
			return fmt.Errorf("lower the archive watermark to %d: %w", h.From, err)
		}
		w = h.From
	}
	fmt.Fprintf(env.Stdout, "restored %d events (%d already present) from %s, positions [%d, %d); archive watermark now %d\n",
		inserted, total-inserted, *from, h.From, h.Before, w)
	return nil
}

// restoreBatch inserts one batch and reads it back in the same
// transaction: the hot table must then hold exactly these events there.
func restoreBatch(ctx context.Context, store *eventfold.Store[*sql.Tx], evs []eventfold.Event) (int64, error) {
	var n int64
	err := store.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if n, err = store.Driver().OpsTx(tx).RestoreEvents(ctx, evs); err != nil {
			return err
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
			if i >= len(evs) || g.GlobalPosition != evs[i].GlobalPosition || g.ID != evs[i].ID ||
				g.StreamID != evs[i].StreamID || g.StreamVersion != evs[i].StreamVersion {
				return fmt.Errorf("position %d holds event %s (%s v%d), not the archived one: refusing to restore over it",
					g.GlobalPosition, g.ID, g.StreamID, g.StreamVersion)
			}
			i++
		}
		if i != len(evs) {
			return fmt.Errorf("read back %d of %d restored events", i, len(evs))
		}
		return nil
	})
	return n, err
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
