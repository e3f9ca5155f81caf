package esctl

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("demo", "[--dsn DSN]",
		`Runs the example bank application (examples/bank): opens accounts, moves money,
shows a rejected command, the read models and the events. Without --dsn (before or after
"demo"; EVENTFOLD_DSN is ignored) it uses a fresh SQLite file in a temporary directory,
so it touches nothing of yours.`,
		`  esctl demo
  esctl demo --dsn postgres://postgres@127.0.0.1:5432/scratch`)
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	if env.opts.Demo == nil {
		return fmt.Errorf("demo: the example application is not built into this %s", env.Program)
	}
	// Only a DSN given on the command line (before or after "demo") is
	// used: EVENTFOLD_DSN may name a production database, and the demo
	// writes into what it is given.
	target := *dsn
	if target == "" && env.dsnGiven {
		target = env.DSN
	}
	if target == "" {
		dir, err := os.MkdirTemp("", "eventfold-demo-")
		if err != nil {
			return err
		}
		target = "sqlite://" + filepath.Join(dir, "demo.db") // the demo prints it, and how to look inside
	}
	return env.opts.Demo(ctx, env.Stdout, target)
}
