// Package esctl is eventfold's operator command line: migrations, reading
// and appending events, following the live log, statistics, subscriptions,
// archiving old events to compressed files and restoring them, and
// rebuilding read models.
//
// The command tree is a package so that a service can embed it in its own
// binary with its reducers registered, which is what `esctl replay` needs
// (reducers are Go code):
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		defer stop()
//		os.Exit(esctl.Main(ctx, os.Args[1:], os.Stdout, os.Stderr, esctl.Options{
//			Name:     "bankctl",
//			Replayer: bank.Replayer(), // rebuilds the bank's read models
//		}))
//	}
//
// # Contract
//
// The database comes from --dsn or EVENTFOLD_DSN (default
// sqlite://eventfold.db); passwords never appear in output or errors.
// Events print as JSON lines with the fields of eventfold.Event. Exit codes:
// 0 success, 1 error, 2 usage error (bad flags, bad JSON, bad expected
// version), 3 wrong expected version, 4 bench: a mode had errors.
package esctl
