// Command pgxonly is an eventfold service on PostgreSQL through pgx:
// it must link pgx and no database/sql driver (linkcheck_test.go).
//
//	go run ./internal/linkcheck/pgxonly postgres://postgres@127.0.0.1:5432/app
package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/linkcheck/service"
	"github.com/eventfold/eventfold/pgxdriver"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pgxonly:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: pgxonly postgres://USER@HOST/DB")
	}
	drv, err := pgxdriver.Open(ctx, args[0])
	if err != nil {
		return err
	}
	store := eventfold.New(drv, nil)
	defer store.Close()
	return service.Run(ctx, store, out)
}
