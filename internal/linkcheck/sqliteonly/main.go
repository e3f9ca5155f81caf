// Command sqliteonly is an eventfold service on SQLite through database/sql:
// it must link its driver and no other (linkcheck_test.go).
//
//	go run ./internal/linkcheck/sqliteonly sqlite://app.db
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/linkcheck/service"
	"github.com/eventfold/eventfold/sqldriver"
	_ "github.com/eventfold/eventfold/sqldriver/sqlitedriver"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sqliteonly:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: sqliteonly sqlite://app.db")
	}
	drv, err := sqldriver.Open(ctx, args[0])
	if err != nil {
		return err
	}
	store := eventfold.New(drv, nil)
	defer store.Close()
	return service.Run(ctx, store, out)
}
