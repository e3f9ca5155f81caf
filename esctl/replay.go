package esctl

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/eventfold/eventfold"
)

// Replayer rebuilds a service's read models from the log, for `replay`.
// esctl reads the log page by page (memory stays flat whatever its length)
// and hands each page to Apply inside a transaction.
type Replayer interface {
	// Reset empties the read models before a replay from the start of the
	// log, in tx.
	Reset(ctx context.Context, tx *sql.Tx) error
	// Apply runs every reducer registered for each event, in order, in tx.
	Apply(ctx context.Context, tx *sql.Tx, events []eventfold.Event) error
}

// ReplayFuncs adapts two functions to Replayer; Reset may be nil (no reset).
type ReplayFuncs struct {
	ResetFunc func(ctx context.Context, tx *sql.Tx) error
	ApplyFunc func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error
}

// Reset implements Replayer.
func (r ReplayFuncs) Reset(ctx context.Context, tx *sql.Tx) error {
	if r.ResetFunc == nil {
		return nil
	}
	return r.ResetFunc(ctx, tx)
}

// Apply implements Replayer.
func (r ReplayFuncs) Apply(ctx context.Context, tx *sql.Tx, events []eventfold.Event) error {
	for _, e := range events {
		if err := r.ApplyFunc(ctx, tx, e); err != nil {
			return fmt.Errorf("event at position %d (%s): %w", e.GlobalPosition, e.Type, err)
		}
	}
	return nil
}

const embedHelp = `Reducers are Go code, so replay needs a binary with them compiled in: embed
esctl's command tree in your service's own command and register a Replayer.

    package main

    import (
        "context"
        "database/sql"
        "os"
        "os/signal"

        "github.com/eventfold/eventfold"
        "github.com/eventfold/eventfold/esctl"
    )

    func main() {
        ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
        defer stop()
        os.Exit(esctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, esctl.Options{
            Name: "bankctl",
            Replayer: esctl.ReplayFuncs{
                // Empty the read models (replay from the start only).
                ResetFunc: func(ctx context.Context, tx *sql.Tx) error {
                    _, err := tx.ExecContext(ctx, "DELETE FROM balances")
                    return err
                },
                // Apply one event: the same reducers the orchestrator runs.
                ApplyFunc: func(ctx context.Context, tx *sql.Tx, ev eventfold.Event) error {
                    return applyToReadModels(ctx, tx, ev)
                },
            },
        }))
    }

Then: bankctl --dsn "$DSN" replay    (the example app in examples/bank shows it).
`

func runReplay(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("replay", "[--from POS] [--no-reset] [--commit-every N]",
		`Rebuilds read models from the log: empties them (the Replayer's Reset), then feeds
every event, in global-position order, through the registered reducers. By default the
whole rebuild is one transaction: readers see the old read models until it commits, and
a failing reducer leaves them untouched. Stop writers first (or accept that events
appended during the replay are applied by both).

`+embedHelp,
		`  bankctl replay
  bankctl replay --from 120000 --no-reset      # catch up after a restore`)
	from := fs.Int64("from", 0, "first global position to apply")
	noReset := fs.Bool("no-reset", false, "apply on top of the current read models (no Reset)")
	every := fs.Int("commit-every", 0, "commit every N events instead of once (resumable with --from, not atomic)")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if *from < 0 || *every < 0 {
		return usagef("replay: --from and --commit-every must not be negative")
	}
	r := env.opts.Replayer
	if r == nil && env.opts.ReplayerFor == nil {
		fmt.Fprint(env.Stderr, embedHelp)
		return fmt.Errorf("replay: this %s has no reducers registered (see above)", env.Program)
	}
	store, err := env.openWritable(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	if env.opts.ReplayerFor != nil {
		if r, err = env.opts.ReplayerFor(store); err != nil {
			return fmt.Errorf("replay: %w", err)
		}
	}
	if err := eventfold.CheckReadAll(ctx, store.Driver().Ops(), *from); err != nil {
		return fmt.Errorf("replay from %d: %w", *from, err)
	}
	head, err := store.Head(ctx)
	if err != nil {
		return err
	}
	bar := env.progress("replay", 0)
	var applied int64
	next := *from
	reset := !*noReset
	for done := false; !done; {
		// next advances page by page inside the transaction; if it fails,
		// nothing of it is kept, so resuming must start where it began.
		txFrom := next
		err := store.InTx(ctx, func(tx *sql.Tx) error {
			if reset {
				if err := r.Reset(ctx, tx); err != nil {
					return fmt.Errorf("reset read models: %w", err)
				}
			}
			var inTx int
			for {
				// With --commit-every, read no further than the commit
				// point, so that transactions hold N events, not a page.
				limit := pageSize
				if *every > 0 && *every-inTx < limit {
					limit = *every - inTx
				}
				evs, err := store.ReadAllTx(ctx, tx, eventfold.ReadAllOptions{From: next, Limit: limit})
				if err != nil {
					return err
				}
				page := evs[:0:0]
				for _, e := range evs {
					if e.GlobalPosition > head {
						break
					}
					page = append(page, e)
				}
				if len(page) > 0 {
					actx, end := env.startReplay(ctx, page)
					err := r.Apply(actx, tx, page)
					end(err)
					if err != nil {
						return fmt.Errorf("replay: %w", err)
					}
					next = page[len(page)-1].GlobalPosition + 1
					inTx += len(page)
					bar.add(int64(len(page)))
				}
				if len(page) < limit || len(page) < len(evs) {
					done = true
					return nil
				}
				if *every > 0 && inTx >= *every {
					return nil
				}
			}
		})
		if err != nil {
			return fmt.Errorf("%w (nothing of the failed transaction was kept; applied and committed before it: %d events, next position %d)", err, applied, txFrom)
		}
		applied = bar.done
		reset = false
	}
	bar.finish()
	fmt.Fprintf(env.Stdout, "replayed %d events up to position %d\n", applied, head)
	return nil
}
