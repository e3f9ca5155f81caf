package esctl

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/listener"
	"github.com/eventfold/eventfold/pgxdriver"
	"github.com/eventfold/eventfold/sqldriver"
)

func runTail(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("tail", "[--from POS] [--stream PREFIX] [--type T] [--limit N]",
		`Follows the live log: prints events as JSON lines as they commit, in global-position
order, never skipping one that commits late. Starts after the current head unless --from
is given (--from 0: the start of the log). Runs until interrupted, or until --limit
matching events have been printed (for scripts).`,
		`  esctl tail --stream account- --type MoneyWithdrawn
  esctl tail --from 0 --limit 10 | jq .type`)
	from := fs.Int64("from", -1, "first global position (default: after the current head)")
	prefix := fs.String("stream", "", "only streams whose id starts with PREFIX")
	typ := fs.String("type", "", "only events of this type")
	limit := fs.Int64("limit", 0, "exit after N matching events (default: never)")
	poll := fs.Duration("poll", 500*time.Millisecond, "how often to look for new events when idle")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	switch {
	case *limit < 0:
		return usagef("tail: --limit %d is negative", *limit)
	case *from < -1:
		return usagef("tail: --from %d is negative", *from)
	case *poll <= 0:
		return usagef("tail: --poll %s must be positive", *poll)
	}
	store, err := env.Open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	after := listener.StartAtHead
	if *from >= 0 {
		after = max(*from-1, 0) // Tail delivers the events after a position
	}
	first := after + 1
	if after == listener.StartAtHead {
		head, err := store.Head(ctx)
		if err != nil {
			return err
		}
		first, after = head+1, head
	}
	if err := eventfold.CheckReadAll(ctx, store.Driver().Ops(), first); err != nil {
		return err
	}
	opts := &listener.Options{
		PollInterval: *poll,
		Logger:       slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if *prefix != "" {
		opts.Filter.StreamPrefixes = []string{*prefix}
	}
	if *typ != "" {
		opts.Filter.Types = []string{*typ}
	}
	if store.Dialect() == eventfold.Postgres {
		// Wake at once on NOTIFY (sent by listener.Notifier, or by esctl
		// append); polling stays the fallback.
		sig := listener.NewSignal()
		lctx, stop := context.WithCancel(ctx)
		defer stop()
		// Its own connection, outside the pool: max_open_conns is the
		// pool's, and PostgreSQL would refuse it as a parameter.
		listenDSN, err := sqldriver.DriverDSN(env.DSN)
		if err != nil {
			return err
		}
		pl := &pgxdriver.Listener{ConnString: listenDSN, Signal: sig, Logger: opts.Logger}
		go func() { _ = pl.Run(lctx) }()
		opts.Wakeup = sig
	}
	w := newEventWriter(env.Stdout)
	var printed int64
	// listener.Tail reads ReadAll from the last position + 1, which is
	// gap-free, and waits PollInterval when caught up.
	// At the head, tail says when committed events wait above it.
	log := &heldBackWatch{Log: store, env: env, ops: store.Driver().Ops()}
	err = listener.Tail(ctx, log, after, opts, func(ctx context.Context, b listener.Batch) error {
		for _, e := range b.Events {
			if err := w.write(e); err != nil {
				return err
			}
			printed++
			if *limit > 0 && printed >= *limit {
				return errLimitReached
			}
		}
		return nil
	})
	if errors.Is(err, errLimitReached) {
		return nil
	}
	return err
}

// errLimitReached ends a tail that has printed --limit events.
var errLimitReached = errors.New("limit reached")
