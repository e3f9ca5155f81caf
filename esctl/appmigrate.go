package esctl

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"text/tabwriter"

	"github.com/pressly/goose/v3"

	"github.com/eventfold/eventfold"
)

// AppMigrations are a service's own goose migrations (its read-model
// tables), applied by `migrate up` after eventfold's and listed by
// `migrate status`, each set with its own version table.
type AppMigrations struct {
	// Name labels the set in output, e.g. "bank".
	Name string
	// Table is the set's goose version table (never eventfold's, nor the
	// default goose_db_version).
	Table string
	// FS returns the set's migration files for a dialect.
	FS func(d eventfold.Dialect) (fs.FS, error)
}

// provider builds the goose provider of the service's migrations.
func (m *AppMigrations) provider(d eventfold.Dialect, db *sql.DB) (*goose.Provider, error) {
	gd := map[eventfold.Dialect]goose.Dialect{
		eventfold.Postgres:  goose.DialectPostgres,
		eventfold.MySQL:     goose.DialectMySQL,
		eventfold.SQLite:    goose.DialectSQLite3,
		eventfold.SQLServer: goose.DialectMSSQL,
	}[d]
	fsys, err := m.FS(d)
	if err != nil {
		return nil, fmt.Errorf("%s migrations: %w", m.Name, err)
	}
	p, err := goose.NewProvider(gd, db, fsys, goose.WithTableName(m.Table), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("%s migrations: %w", m.Name, err)
	}
	return p, nil
}

// appMigrateUp applies the service's pending migrations, if it has any.
func appMigrateUp(ctx context.Context, env *Env, d eventfold.Dialect, db *sql.DB) error {
	m := env.opts.Migrations
	if m == nil {
		return nil
	}
	fsys, err := m.FS(d)
	if err != nil {
		return fmt.Errorf("%s migrations: %w", m.Name, err)
	}
	res, err := eventfold.MigrateApp(ctx, d, db, fsys, m.Table)
	printResults(env, res)
	if err != nil {
		return fmt.Errorf("migrate up (%s): %w", m.Name, err)
	}
	if len(res) == 0 {
		fmt.Fprintf(env.Stdout, "no pending %s migrations\n", m.Name)
	}
	return nil
}

// appMigrateStatus lists the service's migrations after eventfold's.
func appMigrateStatus(ctx context.Context, env *Env, d eventfold.Dialect, db *sql.DB) error {
	m := env.opts.Migrations
	if m == nil {
		return nil
	}
	p, err := m.provider(d, db)
	if err != nil {
		return err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status (%s): %w", m.Name, err)
	}
	fmt.Fprintf(env.Stdout, "\n%s (version table %s):\n", m.Name, m.Table)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tAPPLIED AT\tFILE")
	for _, s := range st {
		at := "-"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.UTC().Format("2006-01-02 15:04:05Z")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", s.Source.Version, s.State, at, s.Source.Path)
	}
	return tw.Flush()
}
