package eventfold

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3/database"
)

// ErrSchemaNotInstalled is matched (errors.Is) when the database has no
// eventfold schema: Migrate (or `esctl migrate up`) was never run on it.
var ErrSchemaNotInstalled = errors.New("eventfold: the eventfold schema is not installed in this database")

// ErrSchemaOutdated is matched (errors.Is) when the database's eventfold
// schema is older than this eventfold needs: migrations are pending (the
// binary was upgraded, the database was not).
var ErrSchemaOutdated = errors.New("eventfold: the eventfold schema in this database is older than this eventfold needs")

// ErrVersionTableMissing is matched (errors.Is) when eventfold's tables
// answer but its migration table (MigrationTable) is not found: dropped or
// renamed, or, on PostgreSQL, in a schema that is not on this connection's
// search_path (the schema was migrated with another search_path). The
// schema's version is unknown then, and migrating up would run the first
// migration again over the existing tables: Migrate and esctl refuse.
var ErrVersionTableMissing = errors.New("eventfold: eventfold's tables are installed but its migration table " + MigrationTable + " is not found")

// ErrSchemaNewer is matched (errors.Is) when the database's eventfold
// schema is newer than this eventfold knows: its version table names a
// migration above the highest this binary embeds (another, newer program
// migrated it). Writing through an older binary could break what the newer
// schema guarantees (on SQLite it could hand out a position twice), so
// Append, AppendTx, AppendManyTx, the orchestrator's Dispatch, Migrate and
// every write through the Store's Ops (Store.Ops, OpsTx, InOpsTx:
// checkpoints, leases, command records, the archive) refuse; reads go on. Upgrade the program to an eventfold that knows the
// database's version.
var ErrSchemaNewer = errors.New("eventfold: the eventfold schema in this database is newer than this eventfold knows")

// schemaHint is how to install the schema, appended to ErrSchemaNotInstalled.
const schemaHint = "install it with `esctl --dsn DSN migrate up`, Store.Migrate, or goose (see the README's section for DBAs)"

// SchemaVersion returns the version of eventfold's schema applied to db: 0
// when it is not installed. It only reads: unlike goose's own status it
// never creates the version table.
func SchemaVersion(ctx context.Context, d Dialect, db *sql.DB) (int64, error) {
	st, _, err := schemaVersion(ctx, d, db)
	return st.Version, err
}

// schemaVersion is SchemaVersion; found tells whether the version table is
// there (it may hold no version yet: a first migration running).
func schemaVersion(ctx context.Context, d Dialect, db *sql.DB) (st SchemaState, found bool, err error) {
	st, found, err = readVersion(ctx, d, db)
	var unsure *versionTableUnsureError
	if errors.As(err, &unsure) {
		// goose has no table-exists query for SQLite and SQL Server: when
		// the database answers but reading the version table fails, the
		// table is not there (telling "no such table" apart by its error
		// code would put dialect knowledge here).
		if perr := db.PingContext(ctx); perr == nil && ctx.Err() == nil {
			return SchemaState{}, false, nil
		}
		return SchemaState{}, false, unsure.err
	}
	return st, found, err
}

// SchemaState is what eventfold's version table records, read as goose
// reads it: the latest row of each version (by id) decides whether that
// migration is applied (an older goose recorded a rollback as a row with
// is_applied false; goose v3 deletes the rows instead).
type SchemaState struct {
	// Version is the highest applied version (0: none).
	Version int64
	// Gaps are the migrations this eventfold embeds, below Version, that
	// are not recorded as applied: a row deleted by hand, or a version
	// table restored from another database. goose's up refuses to fill
	// them ("missing (out-of-order) migrations").
	Gaps []int64
	// RolledBack are the versions whose latest row says is_applied false.
	// goose v3's provider counts any row as applied, so its up does not
	// run them again.
	RolledBack []int64
}

// stateOf reads the rows goose's ListMigrations returns (newest first).
func stateOf(d Dialect, rows []*database.ListMigrationsResult) SchemaState {
	var st SchemaState
	seen := map[int64]bool{}
	applied := map[int64]bool{}
	for _, r := range rows {
		if seen[r.Version] {
			continue
		}
		seen[r.Version] = true
		if r.IsApplied {
			applied[r.Version] = true
			st.Version = max(st.Version, r.Version)
		} else if r.Version > 0 {
			st.RolledBack = append(st.RolledBack, r.Version)
		}
	}
	slices.Sort(st.RolledBack)
	if vs, err := embeddedVersions(d); err == nil {
		for _, v := range vs {
			if v < st.Version && !applied[v] {
				st.Gaps = append(st.Gaps, v)
			}
		}
	}
	return st
}

// versionTableUnsureError is readVersion's error when reading the version
// table failed and goose could not tell whether the table exists: on a
// pool, a database that answers a ping has no version table.
type versionTableUnsureError struct{ err error }

func (e *versionTableUnsureError) Error() string { return e.err.Error() }
func (e *versionTableUnsureError) Unwrap() error { return e.err }

// readVersion is the one reader of eventfold's version table, through
// conn: the pool or a transaction. Where goose can tell whether the table
// exists (PostgreSQL, MySQL) it asks first, so that a missing table does not
// fail (on PostgreSQL: abort) a transaction. found tells whether the table
// is there (it may hold no version yet: a first migration running); v is 0
// when no version is recorded. When the read fails and goose could not
// tell whether the table exists, the error is a *versionTableUnsureError.
func readVersion(ctx context.Context, d Dialect, conn database.DBTxConn) (st SchemaState, found bool, err error) {
	_, gd, err := gooseDialect(d)
	if err != nil {
		return st, false, err
	}
	gs, err := database.NewStore(database.Dialect(gd), MigrationTable)
	if err != nil {
		return st, false, fmt.Errorf("eventfold: schema version: %w", err)
	}
	exists := false // known to exist: goose could ask
	if ext, ok := gs.(database.StoreExtender); ok {
		var err error
		exists, err = ext.TableExists(ctx, conn)
		if err == nil && !exists {
			return st, false, nil
		}
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return st, false, fmt.Errorf("eventfold: schema version: %w", err)
		}
	}
	// Every row, newest first: the latest row of a version decides (a
	// max(version_id) counted rolled-back rows as applied).
	rows, err := gs.ListMigrations(ctx, conn)
	if err != nil && exists {
		// The table is there but may not be read (a role without rights
		// on it): that is no missing schema, and "run migrate up" would
		// be the wrong advice.
		return st, true, fmt.Errorf("eventfold: schema version: the version table %s exists but reading it failed: %w", MigrationTable, err)
	}
	if err != nil {
		return st, false, &versionTableUnsureError{fmt.Errorf("eventfold: schema version: %w", err)}
	}
	return stateOf(d, rows), true, nil
}

// embeddedVersions returns the versions of the migrations this eventfold
// embeds for d, in order.
func embeddedVersions(d Dialect) ([]int64, error) {
	fsys, err := MigrationsFS(d)
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, n := range names {
		digits := n[:len(n)-len(strings.TrimLeft(n, "0123456789"))]
		v, err := strconv.ParseInt(digits, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("eventfold: migration file %q has no version number", n)
		}
		out = append(out, v)
	}
	slices.Sort(out)
	return out, nil
}

// SchemaVersion returns the version of eventfold's schema in the store's
// database (0: not installed).
// When there is no version table but eventfold's log answers, it returns
// an error matching ErrVersionTableMissing.
func (s *Store[TTx]) SchemaVersion(ctx context.Context) (int64, error) {
	st, err := s.SchemaState(ctx)
	return st.Version, err
}

// SchemaState reads the store's version table once: the version (as
// SchemaVersion returns it), the gaps below it and the rolled-back rows.
func (s *Store[TTx]) SchemaState(ctx context.Context) (SchemaState, error) {
	st, found, err := schemaVersion(ctx, s.driver.Dialect(), s.driver.DB())
	v := st.Version
	if err == nil && v > 0 {
		// The answer CheckWritable would ask for: recorded, so that a
		// caller who read the version does not pay a second read.
		_ = s.decideWritable(v, true)
	}
	if err != nil || v != 0 || found {
		// found with no version: a first migration is running (MySQL's
		// DDL shows its tables before it records the version).
		return st, err
	}
	if _, lerr := s.driver.Ops().LastPosition(ctx); lerr == nil {
		return SchemaState{}, VersionTableMissingError()
	}
	return SchemaState{}, nil
}

// VersionTableMissingError returns ErrVersionTableMissing saying where to
// look.
func VersionTableMissingError() error {
	return fmt.Errorf("%w (dropped or renamed; on PostgreSQL it is looked up through the search_path, so connect with the search_path the schema was migrated with): its schema version is unknown, and migrating up would run the first migration over the existing tables", ErrVersionTableMissing)
}

// schemaErr turns a database error into ErrSchemaNotInstalled when the
// reason is that the schema was never installed: a driver's "no such
// table" says nothing a newcomer can act on. Typed errors and errors after
// ctx ended pass through; the check costs one query, on the error path only.
func (s *Store[TTx]) schemaErr(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil || errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrWrongExpectedVersion) ||
		errors.Is(err, ErrArchived) || errors.Is(err, ErrDuplicateEventID) || errors.Is(err, ErrSchemaNotInstalled) ||
		s.driver.Ops().PermissionDenied(err) {
		// A statement refused to the account is no missing schema: on
		// MySQL such an account sees no version table either, and "not
		// installed" sent it to run migrate up.
		return err
	}
	return s.versionError(ctx, err)
}

// SchemaError returns ErrSchemaNotInstalled, with the message Append
// gives, when err is the database's "no such table" (as its dialect
// recognises it) and eventfold's schema is not installed; ErrSchemaOutdated
// (wrapping err) when the schema is installed but older than this eventfold
// needs; otherwise err unchanged. The orchestrator and the listener pass their database errors
// through it. It costs a query only for an undefined-object error.
func (s *Store[TTx]) SchemaError(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, ErrSchemaNotInstalled) || ctx.Err() != nil || !s.driver.Ops().UndefinedObject(err) {
		return err
	}
	return s.versionError(ctx, err)
}

// versionError asks the migration table why err happened: not installed
// (ErrSchemaNotInstalled), older than this eventfold (ErrSchemaOutdated,
// wrapping err), or neither (err unchanged).
func (s *Store[TTx]) versionError(ctx context.Context, err error) error {
	v, verr := s.SchemaVersion(ctx)
	if verr != nil {
		return err
	}
	if v == 0 {
		return NotInstalledError()
	}
	if !s.driver.Ops().UndefinedObject(err) {
		return err // an older schema explains only a missing table, function or column
	}
	latest, lerr := LatestSchemaVersion(s.driver.Dialect())
	if lerr == nil && v < latest {
		return fmt.Errorf("%w (%w)", OutdatedError(v, latest), err)
	}
	if lerr == nil {
		// Recorded as migrated, yet an object the migrations create is not
		// there: a dump loaded without its procedures or functions, or an
		// object dropped by hand.
		return fmt.Errorf("%w (the schema is recorded at version %d, yet this object is missing: a dump loaded without its procedures or functions, or dropped by hand? 'esctl doctor' names what is missing)", err, v)
	}
	return err
}

// LatestSchemaVersion returns the highest migration version this eventfold
// embeds for dialect d: the version Migrate brings a database to.
func LatestSchemaVersion(d Dialect) (int64, error) {
	vs, err := embeddedVersions(d)
	if err != nil || len(vs) == 0 {
		return 0, err
	}
	return vs[len(vs)-1], nil
}

// OutdatedError returns ErrSchemaOutdated saying which version the
// database has, which this eventfold needs, and how to upgrade.
func OutdatedError(have, want int64) error {
	return fmt.Errorf("%w: it is at version %d, this eventfold needs %d: upgrade it with `esctl --dsn DSN migrate up`, Store.Migrate, or goose (see the README's section for DBAs)", ErrSchemaOutdated, have, want)
}

// NewerError returns ErrSchemaNewer saying which version the database has,
// the highest this eventfold knows, and what to do.
func NewerError(have, known int64) error {
	return fmt.Errorf("%w: it is at version %d, this eventfold knows versions up to %d: upgrade this program to an eventfold release that has migration %d (writes and migrations are refused; reads work)", ErrSchemaNewer, have, known, have)
}

// schemaCheck is the outcome of a Store's check that its schema is not
// newer than this eventfold (err nil: it is not).
type schemaCheck struct{ err error }

// CheckWritable returns an error matching ErrSchemaNewer when the store's
// schema is newer than this eventfold knows, nil otherwise. The database is
// asked once per Store: the first answer that names a version is kept, so
// the check costs an atomic load afterwards (a schema migrated beyond this
// binary while it runs is noticed by the next Store, e.g. on restart). Until
// the schema is installed, or when the version cannot be read, it answers
// nil and asks again next time: the write then fails on its own terms.
// Append, AppendTx, AppendManyTx and the orchestrator call it; call it
// yourself before writing through Ops.
//
// Concurrent first checks read the version once: the others wait for that
// answer (or their ctx). A process that starts under load sends every
// client's first command at once, and on a new PostgreSQL connection the
// read costs ~10 ms of server CPU (catalog lookups on a cold backend), so
// each client reading it put the first commands of the delivery benchmark
// 0.25–0.5 s behind their schedule.
func (s *Store[TTx]) CheckWritable(ctx context.Context) error {
	if c := s.schema.Load(); c != nil {
		return c.err
	}
	select {
	case s.checking <- struct{}{}:
		defer func() { <-s.checking }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if c := s.schema.Load(); c != nil {
		return c.err // answered while this call waited
	}
	return s.checkWritable(ctx, s.driver.DB())
}

// checkWritableTx is CheckWritable for a write inside tx: the first check
// reads the version through tx when tx can run queries of database/sql
// (*sql.Tx: a pool of one connection, as SQLite's in-memory database has,
// would wait for ever for a second connection), otherwise through the pool.
func (s *Store[TTx]) checkWritableTx(ctx context.Context, tx TTx) error {
	if c := s.schema.Load(); c != nil {
		return c.err
	}
	if conn, ok := any(tx).(database.DBTxConn); ok {
		return s.checkWritableIn(ctx, conn)
	}
	// A driver whose transactions are not database/sql's (pgx) lends tx as
	// a database/sql connection, and the version is read through it as
	// through the pool: reading through the pool waited for ever when the
	// caller's transactions held every connection (a pool of N and N
	// concurrent AppendTx as a new Store's first writes).
	if c, ok := any(s.driver).(sqlConnLender[TTx]); ok {
		var err error
		if lerr := c.WithSQLConn(ctx, tx, func(conn *sql.Conn) error {
			err = s.checkWritableIn(ctx, conn)
			return nil
		}); lerr != nil {
			return nil // not known: as a failed read, no decision
		}
		return err
	}
	return s.checkWritable(ctx, s.driver.DB())
}

// sqlConnLender is implemented by drivers whose transactions are not
// database/sql's: fn gets a database/sql connection whose queries run in
// tx (pgxdriver.Driver.WithSQLConn).
type sqlConnLender[TTx any] interface {
	WithSQLConn(ctx context.Context, tx TTx, fn func(conn *sql.Conn) error) error
}

func (s *Store[TTx]) checkWritable(ctx context.Context, conn database.DBTxConn) error {
	st, _, err := readVersion(ctx, s.driver.Dialect(), conn)
	return s.decideWritable(st.Version, err == nil && st.Version > 0)
}

// checkWritableIn is checkWritable inside the caller's transaction, where
// a version table the account may not read is an error: on PostgreSQL the
// refused read aborted the transaction, and the write that followed failed
// with "current transaction is aborted", hiding the permission error.
func (s *Store[TTx]) checkWritableIn(ctx context.Context, tx database.DBTxConn) error {
	st, _, err := readVersion(ctx, s.driver.Dialect(), tx)
	if err != nil && s.driver.Ops().PermissionDenied(err) {
		return err
	}
	return s.decideWritable(st.Version, err == nil && st.Version > 0)
}

// decideWritable records (once it is known) whether schema version v may
// be written by this binary.
func (s *Store[TTx]) decideWritable(v int64, ok bool) error {
	if _, err := LatestSchemaVersion(s.driver.Dialect()); err != nil || !ok {
		return nil
	}
	c := &schemaCheck{err: newerThanKnown(s.driver.Dialect(), v)}
	s.schema.Store(c)
	return c.err
}

// newerThanKnown returns NewerError when schema version v of dialect d is
// above the highest migration this eventfold embeds, nil otherwise.
func newerThanKnown(d Dialect, v int64) error {
	if known, err := LatestSchemaVersion(d); err == nil && v > known {
		return NewerError(v, known)
	}
	return nil
}

// NotInstalledError returns ErrSchemaNotInstalled with how to install the
// schema.
func NotInstalledError() error { return fmt.Errorf("%w: %s", ErrSchemaNotInstalled, schemaHint) }
