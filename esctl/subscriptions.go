package esctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/eventfold/eventfold"
)

func runSubscriptions(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("subscriptions", "list [--json] | reset NAME --to POS|head [--force]",
		`Durable subscriptions (package listener) keep a checkpoint: the global position of the
last event they handled.
  list    every subscription with its position, lag in events, and lease holder
  reset   set NAME's checkpoint to POS: it next handles the events after POS
          (--to 0 replays everything, --to head skips to now). Refused while a process
          holds the subscription's lease (stop it first, or --force), below the archive
          watermark, or beyond the head.`,
		`  esctl subscriptions list
  esctl subscriptions reset billing-projector --to 0`)
	asJSON := fs.Bool("json", false, "list: print JSON lines")
	to := fs.String("to", "", "reset: the new checkpoint, a position or 'head' (required)")
	force := fs.Bool("force", false, "reset: even while a process holds the lease")
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	name := ""
	if sub == "reset" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if sub == "reset" && name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	} else if err := noArgs(fs); err != nil {
		return err
	}
	switch sub {
	case "list", "reset":
	case "":
		return usagef("subscriptions: missing subcommand: want list or reset (see '%s subscriptions --help')", env.Program)
	default:
		return usagef("subscriptions: unknown subcommand %q: want list or reset", sub)
	}
	var pos int64 = -1
	if sub == "reset" {
		if name == "" {
			return usagef("subscriptions reset: missing NAME")
		}
		// The rules package listener applies: a name it refuses cannot be
		// a subscription, and must not reach the database as a query.
		if err := eventfold.ValidateIdentifier("subscription name", name, 0); err != nil {
			return err
		}
		switch *to {
		case "":
			return usagef("subscriptions reset: --to POS is required")
		case "head":
		default:
			n, err := strconv.ParseInt(*to, 10, 64)
			if err != nil || n < 0 {
				return usagef("subscriptions reset: --to %q: want a global position >= 0 or 'head'", *to)
			}
			pos = n
		}
	}
	open := env.openWritable // reset
	if sub == "list" {
		open = env.Open
	}
	store, err := open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	ops := store.Driver().Ops()
	if sub == "list" {
		subs, err := listSubscriptions(ctx, ops)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(env.Stdout)
			for _, s := range subs {
				if err := enc.Encode(s); err != nil {
					return err
				}
			}
			return nil
		}
		printSubscriptions(env, subs)
		return nil
	}
	return resetSubscription(ctx, env, ops, name, pos, *force)
}

func resetSubscription(ctx context.Context, env *Env, ops eventfold.Ops, name string, pos int64, force bool) error {
	co := ops
	old, found, err := co.GetCheckpoint(ctx, name)
	if err != nil {
		if ops.UndefinedObject(err) {
			return fmt.Errorf("no subscriptions table: run '%s migrate up'", env.Program)
		}
		return err
	}
	if !found {
		return fmt.Errorf("no subscription named %q (see '%s subscriptions list')", name, env.Program)
	}
	head, err := eventfold.HeadOf(ctx, ops)
	if err != nil {
		return err
	}
	if pos < 0 {
		pos = head
	}
	if pos > head && !force {
		return fmt.Errorf("position %d is beyond the head (%d): the subscription would skip events not yet written (--force to do it anyway)", pos, head)
	}
	// The subscription next reads from pos+1: that must not be archived.
	if err := eventfold.CheckReadAll(ctx, ops, pos+1); err != nil {
		return fmt.Errorf("cannot reset %q to %d: %w", name, pos, err)
	}
	owner, err := co.LeaseOwner(ctx, name)
	if err != nil && !ops.UndefinedObject(err) {
		return err
	}
	if owner != "" && !force {
		return fmt.Errorf("subscription %q is running (lease held by %s): stop it first, or --force (it may overwrite the reset with its next checkpoint)", name, owner)
	}
	if err := co.SetCheckpoint(ctx, name, pos); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "subscription %q reset from position %d to %d: it next handles events after %d\n", name, old, pos, pos)
	return nil
}
