package esctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventfold/eventfold"
)

// errNeedsRepair ends `doctor` without --repair on a log that needs one, so
// that scripts see exit 1.
var errNeedsRepair = errors.New("doctor: positions need repair: run again with --repair")

func runDoctor(ctx context.Context, env *Env, args []string) error {
	fs, dsn := env.newFlags("doctor", "[--repair]",
		`Checks the store for damage that routine operations can cause, and with --repair
repairs it. Today: whether the log's positions are ahead of the ones the server
assigns. On PostgreSQL, after a logical dump/restore or logical replication into a
new cluster (transaction ids restart low; readers would see none of the restored
events and new events would land below the subscriptions' checkpoints); the
repair raises the position offset above the log. On MySQL/MariaDB, after the
events table's AUTO_INCREMENT fell to or below the log (TRUNCATE, ALTER TABLE,
a dump into a new database once everything was archived); the repair raises
AUTO_INCREMENT above the log, the archive watermark and every checkpoint.
Appends wait for the moment a repair takes, readers do not. 'migrate up' and the library's Store.Migrate run the same
repair by themselves. Exit 1 when a repair is needed and --repair was not given.`,
		`  esctl --dsn postgres://app@newdb:5432/app doctor
  esctl --dsn postgres://app@newdb:5432/app doctor --repair`)
	repair := fs.Bool("repair", false, "repair what is found")
	if err := env.parse(fs, dsn, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	// The version is read once, here: the checks below take it.
	store, read, err := env.openVersion(ctx, openAnyVersion)
	if err != nil {
		return err
	}
	defer store.Close()
	if read.err != nil {
		return fmt.Errorf("doctor: schema version: %w", read.err)
	}
	// A schema newer than this esctl: say so first, the checks below know
	// only the schema this esctl embeds (--repair is refused, as every
	// write is). The store decided it from the version open read.
	if err := store.CheckWritable(ctx); errors.Is(err, eventfold.ErrSchemaNewer) {
		fmt.Fprintf(env.Stdout, "schema: %v; the checks below know only this esctl's migrations\n", err)
	}
	versionTable := reportVersionTable(env, read.state)
	res, err := checkPositions(ctx, env, store, read.v, *repair, false)
	if err != nil {
		return err
	}
	damaged, err := checkSchemaDamage(ctx, env, store, read.v)
	if err != nil {
		return err
	}
	damaged = damaged || versionTable
	if res.Moved && !res.Repaired {
		return errNeedsRepair
	}
	if damaged {
		return errDamaged
	}
	return nil
}

// reportVersionTable prints what the version table records besides its
// version (gaps, rolled-back rows) and reports whether there was any.
func reportVersionTable(env *Env, st eventfold.SchemaState) bool {
	for _, v := range st.Gaps {
		fmt.Fprintf(env.Stdout, "schema: a gap in %s: migration %d is not recorded as applied, below version %d (a row deleted by hand, or a version table from another database?); 'migrate up' refuses to fill it: check that its objects exist before recording it\n",
			eventfold.MigrationTable, v, st.Version)
	}
	for _, v := range st.RolledBack {
		fmt.Fprintf(env.Stdout, "schema: migration %d is recorded as rolled back (its latest row in %s has is_applied false, as an older goose wrote a rollback); goose's 'up' counts any row as applied and will not run it again: delete its rows, then run 'migrate up'\n",
			v, eventfold.MigrationTable)
	}
	return len(st.Gaps)+len(st.RolledBack) > 0
}

// errDamaged ends doctor when checkSchemaDamage found something.
var errDamaged = errors.New("doctor: the schema or its version table is damaged (see above); --repair does not touch it")

// schemaDamageChecker is implemented by dialects that can tell damage the
// schema version cannot show (MySQL/MariaDB: append procedures missing
// after a dump without --routines, stream rows behind their events).
type schemaDamageChecker interface {
	SchemaDamage(ctx context.Context, version int64) ([]string, error)
}

// checkSchemaDamage prints what the dialect's SchemaDamage finds at
// schema version v and reports whether it found anything.
func checkSchemaDamage[TTx any](ctx context.Context, env *Env, store *eventfold.Store[TTx], v int64) (bool, error) {
	c, ok := store.Driver().Ops().(schemaDamageChecker)
	if !ok {
		return false, nil
	}
	found, err := c.SchemaDamage(ctx, v)
	if err != nil {
		return false, fmt.Errorf("doctor: %w", err)
	}
	for _, f := range found {
		fmt.Fprintln(env.Stdout, f)
	}
	return len(found) > 0, nil
}

// checkPositions runs Store.CheckPositions when the schema has it (on
// PostgreSQL from migration 6, on MySQL/MariaDB from 4: it reads the
// checkpoints and the archive watermark) and prints its message; quiet prints it
// only when the log was moved. v is the schema version, read by the caller
// from the version table, not with goose's GetDBVersion: that takes the
// migration lock, on MySQL a row INSERTed into a lock table, which a
// read-only account may not write (goose retried the refusal for 5
// minutes).
func checkPositions[TTx any](ctx context.Context, env *Env, store *eventfold.Store[TTx], v int64, repair, quiet bool) (eventfold.PositionCheck, error) {
	minVersion := int64(0)
	switch store.Dialect() {
	case eventfold.Postgres:
		minVersion = eventfold.PositionsMigration
	case eventfold.MySQL:
		minVersion = eventfold.MySQLPositionsMigration
	}
	if minVersion > 0 {
		if v < minVersion {
			if quiet {
				return eventfold.PositionCheck{}, nil
			}
			fmt.Fprintf(env.Stdout, "positions: not checked: schema version %d, run 'migrate up' first\n", v)
			return eventfold.PositionCheck{}, nil
		}
	}
	res, err := store.CheckPositions(ctx, repair)
	if err != nil {
		return res, err
	}
	if !quiet || res.Moved {
		fmt.Fprintln(env.Stdout, res.Message)
	}
	return res, nil
}
