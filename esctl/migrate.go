package esctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pressly/goose/v3"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/sqldriver"
)

func runMigrate(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("migrate", "up|down|status|sql [flags]",
		`Manages eventfold's schema (goose migrations, version table eventfold_goose_version)
and, in a service that embeds esctl, the service's own (up and status only).
  up      apply every pending migration (or up to --to VERSION)
  down    roll back the latest migration (or down to --to VERSION; 0 removes everything).
          Refused, saying what would be lost, when it would drop events, command records
          (00002), subscription checkpoints (00003) or the archive watermark, unless --force.
  status  list the migrations and whether each is applied
  sql     print the migration SQL for the DSN's dialect (or --dialect), to review or
          apply by hand; --down prints the rollback SQL instead. Needs no connection.`,
		`  esctl --dsn postgres://app@db:5432/app migrate up
  esctl --dsn mysql://root@127.0.0.1:3306/app migrate status
  esctl migrate sql --dialect postgres > eventfold.sql`)
	to := fs.Int64("to", -1, "target version for up or down")
	dialectName := fs.String("dialect", "", "for sql: postgres, mysql, sqlite or sqlserver (default: the DSN's)")
	down := fs.Bool("down", false, "for sql: print the rollback (Down) SQL, newest migration first")
	force := fs.Bool("force", false, "for down: roll back even if it drops events, command records, checkpoints or the archive watermark")
	// Flags may come before or after the subcommand word.
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if sub == "" && fs.NArg() > 0 {
		sub = fs.Arg(0)
	} else if err := noArgs(fs); err != nil {
		return err
	}
	switch sub {
	case "sql":
		d, err := migrateDialect(env, *dialectName)
		if err != nil {
			return err
		}
		return printMigrationSQL(env, d, *down)
	case "up", "down", "status":
	case "":
		return usagef("migrate: missing subcommand: want up, down, status or sql (see '%s migrate --help')", env.Program)
	default:
		return usagef("migrate: unknown subcommand %q: want up, down, status or sql", sub)
	}
	mode := openExisting
	if sub == "up" {
		mode = openCreate
	}
	store, err := env.open(ctx, mode)
	if err != nil {
		return err
	}
	defer store.Close()
	p, err := eventfold.NewMigrator(store.Dialect(), store.Driver().DB())
	if err != nil {
		return err
	}
	switch sub {
	case "up":
		// goose finds nothing to do on a schema beyond its last migration:
		// a newer eventfold migrated it, and this esctl must not go on
		// (nor run the service's migrations) as if it were current.
		if err := store.CheckWritable(ctx); err != nil {
			return fmt.Errorf("migrate up: %s: %w", sqldriver.Redact(env.DSN), err)
		}
		// On MySQL/MariaDB an interrupt lets the migration in progress
		// finish (its DDL cannot be rolled back); see Store.MigrateUpTo.
		res, err := store.MigrateUpTo(ctx, *to)
		printResults(env, res)
		if err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		if len(res) == 0 {
			fmt.Fprintln(env.Stdout, "no pending migrations")
		}
		// A database restored into a new PostgreSQL cluster is repaired
		// here, before anything appends to it.
		v, err := store.SchemaVersion(ctx)
		if err != nil {
			return fmt.Errorf("migrate up: schema version: %w", err)
		}
		if _, err := checkPositions(ctx, env, store, v, true, true); err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		if *to < 0 { // --to names one of eventfold's versions, not the service's
			return appMigrateUp(ctx, env, store.Dialect(), store.Driver().DB())
		}
	case "down":
		var res []*goose.MigrationResult
		if *to >= 0 {
			res, err = store.MigrateDownTo(ctx, *to, *force)
		} else {
			var r *goose.MigrationResult
			r, err = store.MigrateDown(ctx, *force)
			if r != nil {
				res = append(res, r)
			}
		}
		printResults(env, res)
		if errors.Is(err, eventfold.ErrWouldLoseData) {
			return err
		}
		if errors.Is(err, goose.ErrNoNextVersion) {
			fmt.Fprintln(env.Stdout, "no migration to roll back")
			return nil
		}
		if err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
	case "status":
		// goose's Status creates its version table: on a database without
		// the schema, list the files as pending without writing anything.
		state, serr := store.SchemaState(ctx)
		if v := state.Version; serr == nil && v == 0 && len(state.RolledBack) == 0 {
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
			for _, src := range p.ListSources() {
				fmt.Fprintf(tw, "%d\tpending\t-\t%s\n", src.Version, src.Path)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "%s: the eventfold schema is not installed: '%s migrate up' installs it\n", env.Program, env.Program)
			return nil
		}
		// Without the migration lock: status only reads, and a read-only
		// account may not take the lock (goose retried for 5 minutes).
		sp, err := eventfold.NewStatusMigrator(store.Dialect(), store.Driver().DB())
		if err != nil {
			return err
		}
		st, err := sp.Status(ctx)
		if err != nil {
			return fmt.Errorf("migrate status: %w", err)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
		for _, s := range st {
			at := "-"
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
			}
			shown := string(s.State)
			switch {
			case slices.Contains(state.RolledBack, s.Source.Version):
				// goose's Status counts any row; its latest says rolled back.
				shown = "rolled-back"
			case slices.Contains(state.Gaps, s.Source.Version):
				shown = "pending (gap)"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, shown, at, s.Source.Path)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if serr == nil {
			var findings bytes.Buffer
			if reportVersionTable(&Env{Stdout: &findings}, state) {
				fmt.Fprint(env.Stderr, findings.String())
			}
		}
		// The list shows only the migrations this esctl embeds: a newer
		// version recorded in the database would go unmentioned.
		if err := store.CheckWritable(ctx); errors.Is(err, eventfold.ErrSchemaNewer) {
			fmt.Fprintf(env.Stderr, "%s: %v\n", env.Program, err)
		}
		return appMigrateStatus(ctx, env, store.Dialect(), store.Driver().DB())
	}
	return nil
}

func printResults(env *Env, res []*goose.MigrationResult) {
	for _, r := range res {
		if r == nil {
			continue
		}
		status := "OK"
		if r.Error != nil {
			status = "FAILED"
		}
		fmt.Fprintf(env.Stdout, "%-6s %-4s %s (%s)\n", status, r.Direction, r.Source.Path, r.Duration.Round(1e5))
	}
}

// migrateDialect picks the dialect for `migrate sql`: --dialect, else the
// DSN's scheme. No connection is made.
func migrateDialect(env *Env, name string) (eventfold.Dialect, error) {
	if name != "" {
		d, err := eventfold.ParseDialect(strings.ToLower(name))
		if err != nil {
			return "", usagef("migrate sql: --dialect %q: want postgres, mysql, sqlite or sqlserver", name)
		}
		return d, nil
	}
	d, err := sqldriver.DialectOf(env.DSN)
	if err != nil {
		return "", &UsageError{Msg: "migrate sql: " + err.Error()}
	}
	return d, nil
}

// printMigrationSQL prints every migration's Up (or Down) section, ready
// for the dialect's own client: DELIMITER blocks around MySQL routines, GO
// between SQL Server batches.
func printMigrationSQL(env *Env, d eventfold.Dialect, down bool) error {
	fsys, err := eventfold.MigrationsFS(d)
	if err != nil {
		return err
	}
	files, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return err
	}
	sort.Slice(files, func(i, j int) bool {
		vi, vj := fileVersion(files[i]), fileVersion(files[j])
		if down {
			return vi > vj
		}
		return vi < vj
	})
	dir := "Up"
	if down {
		dir = "Down"
	}
	w := env.Stdout
	fmt.Fprintf(w, "-- eventfold schema for %s: the %s sections of %d migration file(s), in order.\n", d, dir, len(files))
	fmt.Fprintf(w, "-- Applied by hand, the goose version table (%s) is not updated: afterwards\n", eventfold.MigrationTable)
	fmt.Fprintf(w, "-- 'esctl migrate status' still lists these as pending. Prefer 'esctl migrate up'\n")
	fmt.Fprintf(w, "-- or: goose -table %s ... up\n", eventfold.MigrationTable)
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n-- ===== %s (%s) =====\n", f, dir)
		fmt.Fprint(w, gooseSection(string(b), down, d))
	}
	return nil
}

func fileVersion(name string) int64 {
	n, _, _ := strings.Cut(name, "_")
	v, _ := strconv.ParseInt(n, 10, 64)
	return v
}

// gooseSection extracts the Up or Down part of a goose SQL file. Comments
// before "-- +goose Up" (the file's explanatory header) are kept with Up.
func gooseSection(src string, down bool, d eventfold.Dialect) string {
	var b strings.Builder
	section := "header"
	inBlock := false
	for _, line := range strings.SplitAfter(src, "\n") {
		trim := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trim, "-- +goose Up"):
			section = "up"
			continue
		case strings.HasPrefix(trim, "-- +goose Down"):
			section = "down"
			continue
		case strings.HasPrefix(trim, "-- +goose StatementBegin"):
			inBlock = true
			if want(section, down) && d == eventfold.MySQL {
				b.WriteString("DELIMITER //\n")
			}
			continue
		case strings.HasPrefix(trim, "-- +goose StatementEnd"):
			inBlock = false
			if want(section, down) {
				switch d {
				case eventfold.MySQL:
					b.WriteString("//\nDELIMITER ;\n")
				case eventfold.SQLServer:
					b.WriteString("GO\n")
				}
			}
			continue
		case strings.HasPrefix(trim, "-- +goose"):
			continue // NO TRANSACTION, ENVSUB and the like
		}
		if want(section, down) {
			b.WriteString(line)
			if d == eventfold.SQLServer && !inBlock && strings.HasSuffix(trim, ";") && !strings.HasPrefix(trim, "--") {
				b.WriteString("GO\n")
			}
		}
	}
	return b.String()
}

func want(section string, down bool) bool {
	if down {
		return section == "down"
	}
	return section == "up" || section == "header"
}
