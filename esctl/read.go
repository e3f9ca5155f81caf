package esctl

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventfold/eventfold"
)

// pageSize is how many events esctl reads per query: memory stays flat
// whatever the length of the log.
const pageSize = 1000

func runRead(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("read", "(--stream S | --all) [flags]",
		`Prints events as JSON lines: one stream in version order (or backward), or the whole
log in global-position order. Reads page by page, so the whole log may be read.
Reading into an archived range fails and says so (restore the archive first).`,
		`  esctl read --stream account-42
  esctl read --stream account-42 --backward --limit 1     # the latest event
  esctl read --all --from 1200 --limit 100 | jq -c '{global_position, type}'`)
	stream := fs.String("stream", "", "the stream to read")
	all := fs.Bool("all", false, "read the whole log in global-position order")
	from := fs.Int64("from", -1, "first stream version (default: 1, or the last one backward), or with --all the first global position (default: the start)")
	limit := fs.Int64("limit", 0, "stop after N events (default: no limit)")
	backward := fs.Bool("backward", false, "read the stream from --from towards version 1")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *all && *stream != "":
		return usagef("read: give --stream or --all, not both")
	case !*all && *stream == "":
		return usagef("read: --stream S or --all is required")
	case *all && *backward:
		return usagef("read: --backward reads a stream; the whole log reads forward only")
	case *limit < 0:
		return usagef("read: --limit %d is negative", *limit)
	case *from < -1:
		return usagef("read: --from %d is negative", *from)
	}
	store, err := env.Open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	w := newEventWriter(env.Stdout)
	if *all {
		start := max(*from, 0)
		var n int64
		if err := forEachEvent(ctx, store, start, *limit, func(e eventfold.Event) error { n++; return w.write(e) }); err != nil {
			return err
		}
		if *limit == 0 || n < *limit {
			// The read stopped at the head: say if committed events are
			// above it (held back by a running transaction).
			sayHeldBack(ctx, env, store.Driver().Ops(), "read")
		}
		return nil
	}
	return readStream(ctx, store, *stream, *from, *limit, *backward, w)
}

// forEachEvent streams the log from position from, page by page (the store
// refuses to start below the archive watermark). limit 0 means up to the
// current head.
func forEachEvent(ctx context.Context, store *eventfold.Store[*sql.Tx], from, limit int64, fn func(eventfold.Event) error) error {
	var n int64
	for {
		page := pageSize
		if limit > 0 && limit-n < int64(page) {
			page = int(limit - n)
		}
		evs, err := store.ReadAll(ctx, eventfold.ReadAllOptions{From: from, Limit: page})
		if err != nil {
			return err
		}
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
		}
		n += int64(len(evs))
		if len(evs) < page || (limit > 0 && n >= limit) {
			return nil
		}
		from = evs[len(evs)-1].GlobalPosition + 1
	}
}

func readStream(ctx context.Context, store *eventfold.Store[*sql.Tx], stream string, from, limit int64, backward bool, w *eventWriter) error {
	if err := eventfold.ValidateStreamID(stream); err != nil {
		return err
	}
	if from < 0 {
		from = 0 // forward: version 1; backward: the last event
	}
	var n int64
	next := from
	for {
		page := pageSize
		if limit > 0 && limit-n < int64(page) {
			page = int(limit - n)
		}
		// The store reports archived versions (*eventfold.ArchivedError).
		evs, err := store.ReadStream(ctx, stream, eventfold.ReadStreamOptions{From: next, Limit: page, Backward: backward})
		if err != nil {
			if n > 0 {
				return fmt.Errorf("after %d events: %w", n, err)
			}
			return err
		}
		for _, e := range evs {
			if err := w.write(e); err != nil {
				return err
			}
		}
		n += int64(len(evs))
		if len(evs) < page || (limit > 0 && n >= limit) {
			return nil
		}
		last := evs[len(evs)-1].StreamVersion
		if backward {
			if last <= 1 {
				return nil
			}
			next = last - 1
		} else {
			next = last + 1
		}
	}
}
