package eventfold

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/eventfold/eventfold/internal/contract"
	migrations "github.com/eventfold/eventfold/sql"
)

// MigrationTable is the goose version table eventfold uses, so that a
// user's own goose_db_version table is never touched.
const MigrationTable = "eventfold_goose_version"

// migrationLockID is the advisory lock key eventfold's migrations take
// (crc32 of "eventfold"), distinct from goose's default so that a user's
// own goose migrations never wait on ours.
const migrationLockID = 0x1f3f0d4e

// MigrationsFS returns the embedded migrations of one dialect: the same
// files as sql/<dialect>/ in the repository.
func MigrationsFS(d Dialect) (fs.FS, error) {
	dir, _, err := gooseDialect(d)
	if err != nil {
		return nil, err
	}
	return fs.Sub(migrations.FS, dir)
}

func gooseDialect(d Dialect) (dir string, gd goose.Dialect, err error) {
	switch d {
	case Postgres:
		return "postgres", goose.DialectPostgres, nil
	case MySQL:
		return "mysql", goose.DialectMySQL, nil
	case SQLite:
		return "sqlite", goose.DialectSQLite3, nil
	case SQLServer:
		return "mssql", goose.DialectMSSQL, nil
	}
	return "", "", &unknownDialectError{name: string(d)}
}

// NewMigrator returns a goose Provider over eventfold's migrations for
// dialect d, recording versions in MigrationTable. Use it for status;
// Store.Migrate covers the common case, and Store.MigrateDown/MigrateDownTo
// roll back with a guard against dropping events, command records,
// checkpoints or the archive watermark
// (the Provider's own Down has none).
func NewMigrator(d Dialect, db *sql.DB) (*goose.Provider, error) {
	return newMigrator(d, db, true, nil)
}

// NewStatusMigrator returns a goose Provider like NewMigrator's but
// without the migration lock, for Status and GetDBVersion only: those read
// the version table, and a read-only account may run them (on MySQL the
// lock is a row INSERTed into a lock table, whose refusal goose retries for
// 5 minutes). Never migrate with it. On a database without the version
// table goose creates it, as NewMigrator's would.
func NewStatusMigrator(d Dialect, db *sql.DB) (*goose.Provider, error) {
	return newMigrator(d, db, false, nil)
}

// newMigrator makes the Provider. interrupt, when not nil, is the caller's
// context while goose runs under one that ignores its cancellation (see
// migrateUp): waiting for the migration lock still ends with it.
func newMigrator(d Dialect, db *sql.DB, locked bool, interrupt context.Context) (*goose.Provider, error) {
	fsys, err := MigrationsFS(d)
	if err != nil {
		return nil, err
	}
	return newProvider(d, db, fsys, MigrationTable, locked, interrupt)
}

// newProvider makes a Provider of fsys's migrations with version table
// table, taking eventfold's migration lock when locked.
func newProvider(d Dialect, db *sql.DB, fsys fs.FS, table string, locked bool, interrupt context.Context) (*goose.Provider, error) {
	_, gd, _ := gooseDialect(d)
	opts := []goose.ProviderOption{
		goose.WithTableName(table),
		goose.WithDisableGlobalRegistry(true),
	}
	// Two processes migrating at once (say, two replicas starting) must not
	// race: lock where goose can, and on SQLite with the dialect's own lock
	// (a sidecar file, see internal/dialect/sqlite); goose has no locker
	// for SQL Server.
	switch {
	case !locked:
	case d == Postgres:
		l, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
		if err != nil {
			return nil, fmt.Errorf("eventfold: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(l))
	default:
		// A lock taken on the connection goose migrates on (MySQL:
		// GET_LOCK, see internal/dialect/mysql) needs no second one from
		// the pool, which max_open_conns=1 would never give.
		sl, err := contract.MigrationSessionLocker(string(d), db)
		if err != nil {
			return nil, fmt.Errorf("eventfold: migration lock: %w", err)
		}
		if sl != nil {
			opts = append(opts, goose.WithSessionLocker(interruptibleSession(sl, interrupt)))
			break
		}
		if d == MySQL {
			// A program that migrates MySQL without linking eventfold's
			// MySQL dialect (sqldriver/mysqldriver) still takes the lock
			// table's row, as before the dialect had GET_LOCK: it needs a
			// second connection from db.
			l, err := lock.NewMySQLTableLocker(lock.WithTableName(MigrationTable+"_lock"), lock.WithTableLockID(migrationLockID), lock.WithTableLockTimeout(time.Second, 300))
			if err != nil {
				return nil, fmt.Errorf("eventfold: migration lock: %w", err)
			}
			opts = append(opts, goose.WithLocker(interruptible(l, interrupt)))
			break
		}
		l, err := contract.MigrationLocker(string(d), db)
		if err != nil {
			return nil, fmt.Errorf("eventfold: migration lock: %w", err)
		}
		if l != nil {
			opts = append(opts, goose.WithLocker(interruptible(l, interrupt)))
		}
	}
	p, err := goose.NewProvider(gd, db, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("eventfold: migrations for %s: %w", d, err)
	}
	return p, nil
}

// Migrate applies every pending migration, then checks and, where needed,
// repairs the positions (CheckPositions): a PostgreSQL database restored
// into a new cluster is made safe to append to before anything else runs.
// A repair is logged to Config.Logger. A schema newer than this eventfold
// knows (see ErrSchemaNewer) is refused: goose would find nothing to do.
func (s *Store[TTx]) Migrate(ctx context.Context) error {
	if _, err := s.SchemaVersion(ctx); errors.Is(err, ErrVersionTableMissing) {
		return fmt.Errorf("eventfold: migrate %s: %w", s.driver.Dialect(), err)
	}
	// goose would report nothing to do on a schema beyond its last
	// migration; this eventfold must not take it for its own.
	if err := s.refuseNewer(ctx, "migrate"); err != nil {
		return err
	}
	if _, err := s.migrateUp(ctx, -1); err != nil {
		return fmt.Errorf("eventfold: migrate %s: %w", s.driver.Dialect(), err)
	}
	if _, err := s.CheckPositions(ctx, true); err != nil {
		return fmt.Errorf("eventfold: migrate %s: %w", s.driver.Dialect(), err)
	}
	return nil
}

// MigrateUpTo applies the pending migrations up to version to (every one
// when to < 0) and returns what it applied, without Migrate's position
// check. A schema newer than this eventfold knows is refused.
//
// On MySQL and MariaDB, whose DDL commits statement by statement, a
// cancellation of ctx does not stop a migration that has started: it
// would stay half-applied, and running it again would fail on what it
// already did. The migration finishes and the next one does not start;
// the error then matches ctx's error and names the version reached.
// Waiting for another migrator's lock still ends with ctx. Elsewhere a
// cancellation stops the migration in progress, whose transaction rolls
// back.
func (s *Store[TTx]) MigrateUpTo(ctx context.Context, to int64) ([]*goose.MigrationResult, error) {
	if err := s.refuseNewer(ctx, "migrate"); err != nil {
		return nil, err
	}
	return s.migrateUp(ctx, to)
}

func (s *Store[TTx]) migrateUp(ctx context.Context, to int64) ([]*goose.MigrationResult, error) {
	d := s.driver.Dialect()
	fsys, err := MigrationsFS(d)
	if err != nil {
		return nil, err
	}
	return upLocked(ctx, d, s.driver.DB(), fsys, MigrationTable, to, "eventfold: ")
}

// upLocked applies fsys's pending migrations (version table table) up to
// version to (all when to < 0) under the migration lock. Where DDL commits
// statement by statement (MySQL, MariaDB) it runs them one at a time under
// a context that ctx's cancellation does not reach and looks at ctx
// between them, so a cancellation never leaves one half-applied; waiting
// for the lock still ends with ctx.
func upLocked(ctx context.Context, d Dialect, db *sql.DB, fsys fs.FS, table string, to int64, prefix string) ([]*goose.MigrationResult, error) {
	if !contract.AutocommitDDL(string(d)) {
		p, err := newProvider(d, db, fsys, table, true, nil)
		if err != nil {
			return nil, err
		}
		if to >= 0 {
			return p.UpTo(ctx, to)
		}
		return p.Up(ctx)
	}
	p, err := newProvider(d, db, fsys, table, true, ctx)
	if err != nil {
		return nil, err
	}
	run := context.WithoutCancel(ctx)
	var done []*goose.MigrationResult
	for _, src := range p.ListSources() {
		v := src.Version
		if to >= 0 && v > to {
			break
		}
		if err := ctx.Err(); err != nil {
			// The version read without the lock: p's would wait for it
			// under the cancelled ctx.
			reached := int64(-1)
			if sp, perr := newProvider(d, db, fsys, table, false, nil); perr == nil {
				if r, verr := sp.GetDBVersion(run); verr == nil {
					reached = r
				}
			}
			if v <= reached {
				continue
			}
			return done, fmt.Errorf("%sstopped before migration %d, at version %d (each migration ran whole; migrate up again to go on): %w", prefix, v, reached, err)
		}
		res, err := p.UpTo(run, v)
		done = append(done, res...)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// MigrateApp applies a service's own goose migrations (its read-model
// tables: fsys, recorded in their own version table, never eventfold's)
// the way Migrate applies eventfold's: under eventfold's migration lock, so
// that two processes migrating at once (two replicas starting) wait for
// each other instead of both running a migration, and on MySQL and MariaDB
// a cancellation of ctx lets the migration in progress finish and stops
// before the next (see MigrateUpTo). It returns what it applied.
func MigrateApp(ctx context.Context, d Dialect, db *sql.DB, fsys fs.FS, table string) ([]*goose.MigrationResult, error) {
	if !appTableName.MatchString(table) {
		return nil, &ValidationError{Field: "version table", Reason: fmt.Sprintf("%q: a table name of letters, digits and underscores (not starting with a digit, at most 63), optionally after a schema name and a dot", table)}
	}
	if _, name, _ := cutLast(table, "."); strings.EqualFold(name, MigrationTable) {
		return nil, &ValidationError{Field: "version table", Reason: fmt.Sprintf("%q: a service's migrations need a version table of their own, not eventfold's", table)}
	}
	return upLocked(ctx, d, db, fsys, table, -1, "")
}

// appTableName is what MigrateApp accepts as a version table's name: goose
// puts it into its SQL as it is, unquoted.
var appTableName = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// cutLast is strings.Cut at the last sep; without sep, before is "" and
// after is s.
func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return "", s, false
}

// interruptible makes l's Lock end with interrupt (when not nil) as well
// as with the context goose passes, which migrateUp detaches from the
// caller's cancellation.
func interruptible(l lock.Locker, interrupt context.Context) lock.Locker {
	if interrupt == nil {
		return l
	}
	return interruptLocker{l, interrupt}
}

// interruptibleSession is interruptible for a session locker.
func interruptibleSession(l lock.SessionLocker, interrupt context.Context) lock.SessionLocker {
	if interrupt == nil {
		return l
	}
	return interruptSessionLocker{l, interrupt}
}

type interruptSessionLocker struct {
	lock.SessionLocker
	interrupt context.Context
}

func (l interruptSessionLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	ctx, stop := endedBy(ctx, l.interrupt)
	defer stop()
	return l.SessionLocker.SessionLock(ctx, conn)
}

type interruptLocker struct {
	lock.Locker
	interrupt context.Context
}

func (l interruptLocker) Lock(ctx context.Context, db *sql.DB) error {
	ctx, stop := endedBy(ctx, l.interrupt)
	defer stop()
	return l.Locker.Lock(ctx, db)
}

// endedBy returns ctx ended by interrupt as well; call stop when done.
func endedBy(ctx, interrupt context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(interrupt, cancel)
	return ctx, func() { unhook(); cancel() }
}

// PositionsMigration is the first PostgreSQL migration version that has
// eventfold.check_positions; CheckPositions needs at least this schema.
const PositionsMigration = 6

// MySQLPositionsMigration is the first MySQL/MariaDB migration version whose
// tables CheckPositions reads (the subscription checkpoints of 00003, the
// archive watermark of 00004). Appends refuse positions at or below the
// floor from 00018 on.
const MySQLPositionsMigration = 4

// ErrWouldLoseData is matched (through a *DataLossError) when a down
// migration is refused because it would destroy events or the archive
// watermark, the orchestrator's command records or subscriptions'
// checkpoints.
var ErrWouldLoseData = errors.New("eventfold: the down migration would destroy data")

// The migrations whose Down destroys what the log cannot do without.
const (
	eventsMigration        = 1 // 00001_events: the events and streams tables
	commandsMigration      = 2 // 00002_commands: the command records
	subscriptionsMigration = 3 // 00003_subscriptions: checkpoints and leases
	watermarkMigration     = 4 // 00004_archive: the archive watermark
	identityMigration      = 9 // 00009: commit markers and the store identity
)

// DataLossError says what a refused down migration would have destroyed.
// Pass force to MigrateDown/MigrateDownTo (esctl: --force) to go ahead.
type DataLossError struct {
	// From is the current version, To the version asked for.
	From, To int64
	// Events is how many events (and Streams how many streams) rolling back
	// migration 00001 would delete; 0 when it stays.
	Events, Streams int64
	// Commands is how many command records rolling back migration 00002
	// would delete: the orchestrator would run those commands again when
	// they are retried with the same id. 0 when it stays.
	Commands int64
	// Checkpoints is how many durable subscriptions' checkpoints rolling
	// back migration 00003 would delete: each would start again from its
	// StartAt (by default the beginning of the log). 0 when it stays.
	Checkpoints int64
	// ArchivedBefore is the archive watermark that rolling back migration
	// 00004 would forget: afterwards reads would silently start at the first
	// event still in the table instead of failing with ErrArchived, even
	// after migrating up again. 0 when it stays or nothing is archived.
	ArchivedBefore int64
	// StoreID is the store identity that rolling back migration 00009 would
	// forget (a later migrate up makes a new one, and restore then refuses
	// this store's archives without --force); "" when it stays.
	StoreID string
}

func (e *DataLossError) Error() string {
	var lost []string
	if e.Events > 0 {
		lost = append(lost, fmt.Sprintf("%d events in %d streams (migration 00001 drops the log)", e.Events, e.Streams))
	}
	if e.Commands > 0 {
		lost = append(lost, fmt.Sprintf("%d command records (migration 00002; commands retried with the same id would run again)", e.Commands))
	}
	if e.Checkpoints > 0 {
		lost = append(lost, fmt.Sprintf("%d subscription checkpoints (migration 00003; those subscriptions would start again from their StartAt)", e.Checkpoints))
	}
	if e.ArchivedBefore > 0 {
		lost = append(lost, fmt.Sprintf("the archive watermark %d (migration 00004; reads would then silently start at the first event left instead of reporting the archived range)", e.ArchivedBefore))
	}
	if e.StoreID != "" {
		lost = append(lost, fmt.Sprintf("the store identity %s (migration 00009; restore would then refuse this store's archives)", e.StoreID))
	}
	return fmt.Sprintf("eventfold: refusing to migrate down from version %d to %d: it would destroy %s; pass force (esctl: --force) to do it anyway",
		e.From, e.To, strings.Join(lost, ", and "))
}

// Is makes errors.Is(err, ErrWouldLoseData) hold.
func (e *DataLossError) Is(target error) bool { return target == ErrWouldLoseData }

// MigrateDown rolls back the newest applied migration. Unless force, it
// refuses with a *DataLossError when that would drop events, command
// records, subscription checkpoints or a non-zero archive watermark.
func (s *Store[TTx]) MigrateDown(ctx context.Context, force bool) (*goose.MigrationResult, error) {
	if err := s.refuseNewer(ctx, "migrate down"); err != nil {
		return nil, err
	}
	p, err := NewMigrator(s.driver.Dialect(), s.driver.DB())
	if err != nil {
		return nil, err
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("eventfold: migrate down: %w", err)
	}
	to, err := s.previousVersion(ctx, p, cur)
	if err != nil {
		return nil, err
	}
	if err := s.checkDown(ctx, p, to, force); err != nil {
		return nil, err
	}
	return p.Down(ctx)
}

// MigrateDownTo rolls migrations back until version to is the newest
// applied (0 removes everything). Unless force, it refuses with a
// *DataLossError when that would drop events, command records,
// subscription checkpoints or a non-zero archive watermark, and says what
// would be lost.
func (s *Store[TTx]) MigrateDownTo(ctx context.Context, to int64, force bool) ([]*goose.MigrationResult, error) {
	if err := s.refuseNewer(ctx, "migrate down"); err != nil {
		return nil, err
	}
	p, err := NewMigrator(s.driver.Dialect(), s.driver.DB())
	if err != nil {
		return nil, err
	}
	if err := s.checkDown(ctx, p, to, force); err != nil {
		return nil, err
	}
	return p.DownTo(ctx, to)
}

// refuseNewer refuses a migration on a schema newer than this eventfold
// knows: it has no Down for the migrations it lacks.
func (s *Store[TTx]) refuseNewer(ctx context.Context, op string) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return nil
	}
	if err := newerThanKnown(s.driver.Dialect(), v); err != nil {
		return fmt.Errorf("eventfold: %s %s: %w", op, s.driver.Dialect(), err)
	}
	return nil
}

// previousVersion returns the newest applied version below cur (0 if none).
func (s *Store[TTx]) previousVersion(ctx context.Context, p *goose.Provider, cur int64) (int64, error) {
	st, err := p.Status(ctx)
	if err != nil {
		return 0, fmt.Errorf("eventfold: migration status: %w", err)
	}
	var prev int64
	for _, m := range st {
		if m.State == goose.StateApplied && m.Source.Version < cur && m.Source.Version > prev {
			prev = m.Source.Version
		}
	}
	return prev, nil
}

// checkDown measures what rolling back to version to would destroy.
func (s *Store[TTx]) checkDown(ctx context.Context, p *goose.Provider, to int64, force bool) error {
	if force {
		return nil
	}
	cur, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("eventfold: migrate down: %w", err)
	}
	loss := &DataLossError{From: cur, To: to}
	ops := s.driver.Ops()
	if cur >= eventsMigration && to < eventsMigration {
		if loss.Events, loss.Streams, _, err = ops.StatsTotals(ctx); err != nil {
			return fmt.Errorf("eventfold: migrate down: count the events it would drop: %w", err)
		}
	}
	if cur >= commandsMigration && to < commandsMigration {
		if loss.Commands, err = ops.StatsCommandRecords(ctx); err != nil {
			return fmt.Errorf("eventfold: migrate down: count the command records it would drop: %w", err)
		}
	}
	if cur >= subscriptionsMigration && to < subscriptionsMigration {
		rows, err := ops.ListCheckpoints(ctx)
		if err != nil {
			return fmt.Errorf("eventfold: migrate down: count the subscription checkpoints it would drop: %w", err)
		}
		loss.Checkpoints = int64(len(rows))
	}
	if cur >= watermarkMigration && to < watermarkMigration {
		if loss.ArchivedBefore, err = archivedBefore(ctx, ops); err != nil {
			return fmt.Errorf("eventfold: migrate down: %w", err)
		}
	}
	if loss.Events == 0 && loss.Streams == 0 && loss.Commands == 0 && loss.Checkpoints == 0 && loss.ArchivedBefore == 0 {
		return nil
	}
	if cur >= identityMigration && to < identityMigration {
		if loss.StoreID, err = s.Identity(ctx); err != nil {
			return err
		}
	}
	return loss
}
