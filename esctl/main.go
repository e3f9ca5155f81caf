package esctl

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
	_ "github.com/eventfold/eventfold/sqldriver/all" // esctl takes a DSN of any dialect: it links every driver
	"github.com/eventfold/eventfold/sqldriver/mysqldriver"
)

// DefaultDSN is the database esctl uses when neither --dsn nor
// EVENTFOLD_DSN is set.
const DefaultDSN = "sqlite://eventfold.db"

// Exit codes, part of esctl's contract with scripts.
const (
	ExitOK           = 0 // success
	ExitError        = 1 // anything else went wrong
	ExitUsage        = 2 // bad flags, bad JSON, bad expected version
	ExitWrongVersion = 3 // the stream was not at the expected version
	ExitBenchErrors  = 4 // bench: a mode had errors (see BenchErrorsError)
)

// Options configures an embedded command tree. The zero value is the bare
// esctl.
type Options struct {
	// Name is the program name shown in usage. Defaults to "esctl".
	Name string
	// Replayer rebuilds the service's read models for `replay`. Nil: replay
	// explains how to embed esctl with reducers registered.
	Replayer Replayer
	// ReplayerFor, when set, builds the Replayer for the store `replay`
	// opened (a service whose reducers depend on the dialect, say). It
	// takes precedence over Replayer.
	ReplayerFor func(store *eventfold.Store[*sql.Tx]) (Replayer, error)
	// Demo runs the example application for `demo` against a DSN. Nil: demo
	// says it is not built into this binary.
	Demo func(ctx context.Context, stdout io.Writer, dsn string) error
	// Migrations, when set, are the service's own migrations (its
	// read models): `migrate up` applies them after eventfold's, `migrate
	// status` lists them.
	Migrations *AppMigrations
	// Commands adds subcommands, or replaces built-in ones of the same name
	// (for example "bench").
	Commands []Command
	// Getenv reads EVENTFOLD_DSN, EVENTFOLD_METRICS_ADDR and the OTEL_*
	// variables. Defaults to os.Getenv.
	Getenv func(string) string

	hooks *testHooks // failure injection for tests of resumable work
}

// Command is one subcommand.
type Command struct {
	// Name is what the user types, e.g. "bench".
	Name string
	// Summary is the one-line description shown by `esctl help`.
	Summary string
	// Run runs the command with the arguments after its name. Return
	// UsageError for bad flags or input (exit 2), flag.ErrHelp after
	// printing help (exit 0), any other error for exit 1.
	Run func(ctx context.Context, env *Env, args []string) error
}

// Env is what a command runs with: output streams, the DSN and helpers to
// open the store.
type Env struct {
	// Stdout receives results (JSON lines, tables); Stderr messages and
	// progress bars.
	Stdout, Stderr io.Writer
	// DSN is the database, from --dsn, EVENTFOLD_DSN or DefaultDSN.
	DSN string
	// Program is the program name for usage text.
	Program string

	opts *Options
	help bytes.Buffer // the current command's --help text, see newFlags
	// dsnGiven: the DSN came from the global --dsn flag, not from
	// EVENTFOLD_DSN or the default (demo uses a scratch database otherwise).
	dsnGiven bool
	// telemetry is set when --metrics-addr or the OTEL_* variables turned
	// OpenTelemetry on; see Telemetry.
	telemetry *Telemetry
}

// Telemetry returns the OpenTelemetry pipeline that --metrics-addr,
// EVENTFOLD_METRICS_ADDR or OTEL_EXPORTER_OTLP_* turned on, or nil. An
// embedded command (a service's serve) hands its Inst to the
// orchestrator, subscriptions and SSE.
func (env *Env) Telemetry() *Telemetry { return env.telemetry }

// UsageError reports bad flags or input; Main exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Main runs esctl with args (without the program name) and returns the exit
// code. ctx ends long-running commands such as tail.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, opts Options) int {
	if opts.Name == "" {
		opts.Name = "esctl"
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	env := &Env{Stdout: stdout, Stderr: stderr, Program: opts.Name, opts: &opts}

	global := flag.NewFlagSet(opts.Name, flag.ContinueOnError)
	global.SetOutput(stderr)
	dsn := global.String("dsn", "", "database URL (or EVENTFOLD_DSN); default "+DefaultDSN)
	metricsAddr := global.String("metrics-addr", "", "serve Prometheus metrics at http://ADDR/metrics (or EVENTFOLD_METRICS_ADDR)")
	// --help prints to stdout (asked for: it is the result), a bad global
	// flag prints the usage to stderr.
	global.Usage = func() {}
	global.SetOutput(io.Discard)
	if err := global.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			env.printUsage(stdout)
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s: %v (see '%s --help')\n", opts.Name, err, opts.Name)
		return ExitUsage
	}
	env.DSN = *dsn
	env.dsnGiven = *dsn != ""
	if env.DSN == "" {
		env.DSN = opts.Getenv("EVENTFOLD_DSN")
	}
	if env.DSN == "" {
		env.DSN = DefaultDSN
	}
	if *metricsAddr == "" {
		*metricsAddr = opts.Getenv("EVENTFOLD_METRICS_ADDR")
	}
	if *metricsAddr != "" || opts.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		opts.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" || opts.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != "" {
		stop, err := env.startTelemetry(ctx, *metricsAddr)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", opts.Name, err)
			return ExitError
		}
		defer stop()
	}
	rest := global.Args()
	if len(rest) == 0 {
		env.printUsage(stderr)
		return ExitUsage
	}
	name := rest[0]
	if name == "help" || name == "-h" || name == "--help" {
		if len(rest) > 1 {
			if c, ok := env.commands()[rest[1]]; ok {
				return env.exit(c.Run(ctx, env, []string{"--help"}))
			}
		}
		env.printUsage(stdout)
		return ExitOK
	}
	c, ok := env.commands()[name]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n", opts.Name, name)
		env.printUsage(stderr)
		return ExitUsage
	}
	return env.exit(c.Run(ctx, env, rest[1:]))
}

// exit prints err (without any password) and maps it to an exit code.
func (env *Env) exit(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	// One prefix: the program's. The library's own "eventfold: " on each
	// wrapped layer would repeat it.
	msg := strings.NewReplacer("eventfold: ", "", "sqldriver: ", "").Replace(env.scrub(err.Error()))
	var ae *eventfold.ArchivedError
	if errors.As(err, &ae) {
		msg = fmt.Sprintf("events before global position %d are archived: --from %d reads what remains (read --all, tail); '%s restore --from FILE' puts the rest back",
			ae.ArchivedBefore, ae.ArchivedBefore, env.Program)
	}
	var ue *UsageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "%s: %s\n", env.Program, msg)
		return ExitUsage
	case errors.Is(err, errUsageReported):
		return ExitUsage
	case errors.Is(err, eventfold.ErrWrongExpectedVersion):
		fmt.Fprintf(env.Stderr, "%s: %s\n", env.Program, msg)
		return ExitWrongVersion
	case errors.Is(err, eventfold.ErrInvalidInput):
		fmt.Fprintf(env.Stderr, "%s: %s\n", env.Program, msg)
		return ExitUsage
	case errors.As(err, new(*BenchErrorsError)):
		fmt.Fprintf(env.Stderr, "%s: %s\n", env.Program, msg)
		return ExitBenchErrors
	}
	fmt.Fprintf(env.Stderr, "%s: %s\n", env.Program, msg)
	return ExitError
}

// scrub removes the DSN's password from s, wherever a driver echoed it.
func (env *Env) scrub(s string) string { return sqldriver.Scrub(s, env.DSN) }

// commands returns the command table: built-ins, then Options.Commands
// (which may replace a built-in of the same name, e.g. bench).
func (env *Env) commands() map[string]Command {
	m := map[string]Command{}
	for _, c := range builtins() {
		m[c.Name] = c
	}
	for _, c := range env.opts.Commands {
		m[c.Name] = c
	}
	return m
}

func builtins() []Command {
	return []Command{
		{Name: "migrate", Summary: "apply, roll back, list or print the schema migrations", Run: runMigrate},
		{Name: "append", Summary: "append an event to a stream", Run: runAppend},
		{Name: "read", Summary: "read a stream, or the whole log with --all", Run: runRead},
		{Name: "tail", Summary: "follow the live log", Run: runTail},
		{Name: "doctor", Summary: "check for (and --repair) damage such as positions behind a moved PostgreSQL database", Run: runDoctor},
		{Name: "stats", Summary: "events per type and day, streams, head, subscriptions and lag", Run: runStats},
		{Name: "subscriptions", Summary: "list subscriptions or reset one's position", Run: runSubscriptions},
		{Name: "archive", Summary: "move the oldest events to a compressed file", Run: runArchive},
		{Name: "restore", Summary: "put archived events back from a file", Run: runRestore},
		{Name: "relay", Summary: "relay the log to NATS JetStream (relay nats --url U --stream S --subject-prefix P)", Run: runRelay},
		{Name: "replay", Summary: "rebuild read models from the log", Run: runReplay},
		{Name: "demo", Summary: "run the example bank application", Run: runDemo},
		{Name: "bench", Summary: "measure dispatch throughput and latency against a raw baseline, and replay speed", Run: runBench},
	}
}

func (env *Env) printUsage(w io.Writer) {
	p := env.Program
	fmt.Fprintf(w, "%s: eventfold's operator command line\n\n", p)
	fmt.Fprintf(w, "Usage:\n  %s [--dsn DSN] <command> [flags]\n\nCommands:\n", p)
	cmds := env.commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, cmds[n].Summary)
	}
	fmt.Fprintf(w, `
The database is chosen by --dsn, else EVENTFOLD_DSN, else %s:
  postgres://user:pass@host:5432/db   mysql://user:pass@host:3306/db
  sqlite://path/to/file.db            sqlserver://user:pass@host:1433?database=db

Exit codes: 0 ok, 1 error, 2 usage error, 3 wrong expected version, 4 bench: a mode had errors.
Run '%s <command> --help' for a command's flags and an example.

Example:
  %s --dsn sqlite://app.db migrate up
  %s --dsn sqlite://app.db append --stream account-1 --type Opened --data '{"owner":"ada"}'
`, DefaultDSN, p, p, p)
}

// newFlags returns a flag set for one command whose --help prints usage,
// the flags and an example to stdout. Every command also accepts --dsn
// after its name.
func (env *Env) newFlags(name, args, about, example string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(env.Program+" "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dsn := fs.String("dsn", "", "database URL (overrides the global --dsn and EVENTFOLD_DSN)")
	// The flag package calls Usage for --help and for a bad flag alike;
	// only --help should print it (to stdout), so it is written to a buffer
	// that parse prints on flag.ErrHelp and drops otherwise: a bad flag
	// must not put the help text on stdout, where results go.
	env.help.Reset()
	fs.Usage = func() {
		w := &env.help
		fmt.Fprintf(w, "Usage: %s %s %s\n\n%s\n\nFlags:\n", env.Program, name, args, about)
		printDefaults(w, fs)
		fmt.Fprintf(w, "\nExample:\n%s\n", strings.ReplaceAll(example, "esctl ", env.Program+" "))
	}
	return fs, dsn
}

// printDefaults lists fs's flags like flag.PrintDefaults, but states a
// default once: a usage text that already says "(default: ...)" does not
// get the flag package's "(default -1)" after it.
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		line += "\n    \t" + strings.ReplaceAll(usage, "\n", "\n    \t")
		if !strings.Contains(usage, "(default") && f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			line += " (default " + f.DefValue + ")"
		}
		fmt.Fprintln(w, line)
	})
}

// errUsageReported marks a usage error whose message was already printed.
var errUsageReported = errors.New("usage error")

// parse parses a command's flags; a bad flag is a usage error naming it, and
// --help prints usage and ends the command with exit 0.
func (env *Env) parse(fs *flag.FlagSet, dsn *string, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			_, _ = env.help.WriteTo(env.Stdout)
			return flag.ErrHelp
		}
		env.help.Reset()
		return usagef("%s: %v (see '%s --help')", strings.TrimPrefix(fs.Name(), env.Program+" "), err, fs.Name())
	}
	if *dsn != "" {
		env.DSN = *dsn
	}
	return nil
}

// noArgs rejects stray positional arguments.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (see '%s --help')", fs.Name()[strings.IndexByte(fs.Name(), ' ')+1:], fs.Arg(0), fs.Name())
	}
	return nil
}

// Open opens the store the DSN names. The caller closes it. The database
// must exist and hold eventfold's schema: Open never creates a SQLite file,
// and says how to install the schema where it is missing.
func (env *Env) Open(ctx context.Context) (*eventfold.Store[*sql.Tx], error) {
	return env.open(ctx, openInstalled)
}

// openWritable is Open for a command that writes (append, archive,
// restore, replay, relay, subscriptions reset): a schema newer than this
// esctl knows is refused (eventfold.ErrSchemaNewer); reading commands
// (read, tail, stats, subscriptions list) go on.
func (env *Env) openWritable(ctx context.Context) (*eventfold.Store[*sql.Tx], error) {
	store, err := env.Open(ctx)
	if err != nil {
		return nil, err
	}
	if err := store.CheckWritable(ctx); err != nil {
		store.Close()
		return nil, fmt.Errorf("%s: %w", sqldriver.Redact(env.DSN), err)
	}
	return store, nil
}

// openMode says what env.open requires of the database.
type openMode int

const (
	openInstalled  openMode = iota // the schema must be installed and current
	openAnyVersion                 // the schema must be installed, at any version (doctor)
	openExisting                   // the database must exist (migrate status, down)
	openCreate                     // a SQLite file may be created (migrate up)
)

func (env *Env) open(ctx context.Context, mode openMode) (*eventfold.Store[*sql.Tx], error) {
	store, _, err := env.openVersion(ctx, mode)
	return store, err
}

// schemaRead is the schema version open read (err: why it could not).
type schemaRead struct {
	v     int64
	state eventfold.SchemaState
	err   error
}

// openVersion is open, also returning the schema version it read, so that
// a command that needs the version (doctor) reads the version table once.
func (env *Env) openVersion(ctx context.Context, mode openMode) (*eventfold.Store[*sql.Tx], schemaRead, error) {
	d, err := sqldriver.DialectOf(env.DSN)
	if err != nil {
		return nil, schemaRead{}, err
	}
	install := fmt.Sprintf("`%s --dsn %s migrate up`", env.Program, sqldriver.Redact(env.DSN))
	switch d {
	case eventfold.SQLite:
		path, err := sqldriver.SQLitePath(env.DSN)
		if err != nil {
			return nil, schemaRead{}, err
		}
		if path != "" && mode != openCreate {
			if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
				return nil, schemaRead{}, &notInstalledError{fmt.Sprintf("no SQLite database at %s (nothing was created): %s creates it with the eventfold schema", path, install)}
			}
		}
	case eventfold.MySQL:
		cfg, err := mysqldriver.Config(env.DSN)
		if err == nil && cfg.DBName == "" {
			where := cfg.Addr + "/DBNAME"
			if cfg.Net == "unix" {
				where = "/DBNAME?socket=" + cfg.Addr
			}
			return nil, schemaRead{}, usagef("the mysql DSN names no database: write mysql://user@%s (create it first with CREATE DATABASE DBNAME)", where)
		}
	}
	drv, err := sqldriver.Open(ctx, env.DSN)
	if err != nil {
		return nil, schemaRead{}, err
	}
	store := eventfold.New(drv, nil)
	// Every mode: the version table gone from sight says "not installed"
	// wrongly, and migrate up would run 00001 over the existing tables.
	state, err := store.SchemaState(ctx)
	v := state.Version
	if errors.Is(err, eventfold.ErrVersionTableMissing) {
		store.Close()
		return nil, schemaRead{}, fmt.Errorf("%s: %w", sqldriver.Redact(env.DSN), err)
	}
	if mode == openInstalled || mode == openAnyVersion {
		if err == nil && v == 0 {
			store.Close()
			return nil, schemaRead{}, &notInstalledError{fmt.Sprintf("the eventfold schema is not installed in %s: %s installs it", sqldriver.Redact(env.DSN), install)}
		}
		// An older schema lacks tables and functions this esctl uses: say
		// so now, not with the database's "function does not exist" later.
		if latest, lerr := eventfold.LatestSchemaVersion(d); err == nil && lerr == nil && v < latest && mode == openInstalled {
			store.Close()
			return nil, schemaRead{}, fmt.Errorf("%w: the schema in %s is at version %d, this esctl needs %d: %s upgrades it (or '%s doctor' to check it as it is)",
				eventfold.ErrSchemaOutdated, sqldriver.Redact(env.DSN), v, latest, install, env.Program)
		}
	}
	return store, schemaRead{v, state, err}, nil
}

// notInstalledError says that the database or its schema is missing and
// how to install it; errors.Is matches eventfold.ErrSchemaNotInstalled.
type notInstalledError struct{ msg string }

func (e *notInstalledError) Error() string { return e.msg }
func (e *notInstalledError) Unwrap() error { return eventfold.ErrSchemaNotInstalled }
