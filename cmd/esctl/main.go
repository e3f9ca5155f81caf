// Command esctl is eventfold's operator command line; see package esctl.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/eventfold/eventfold/esctl"
	"github.com/eventfold/eventfold/examples/bank/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(esctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, esctl.Options{Demo: demo.Run}))
}
