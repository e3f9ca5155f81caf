// Package contract declares the whole contract between the store (package
// eventfold and its users: orchestrator, listener, esctl) and the dialects
// (internal/dialect/postgres, mysql, sqlite, mssql). It is the one place
// that lists what a dialect implements: every dialect asserts
//
//	var _ contract.Ops = (*Ops)(nil)
//
// so that a drifting signature is a compile error rather than a feature
// that switches itself off at run time. Nothing here knows SQL: the
// dialects hold the statements, error codes, savepoints and NOTIFY.
//
// The data types every side exchanges (Event, EventData, ExpectedVersion,
// PositionCheck) live here too, so that the contract needs nothing from
// package eventfold; eventfold re-exports them as aliases, which is how
// users name them.
package contract

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultChannel is the notification channel eventfold uses (the trigger
// function of PostgreSQL migration 00003 notifies it too).
const DefaultChannel = "eventfold_events"

// ErrUnsupported is returned by an operation the dialect does not offer
// (Capabilities tells which ones ahead of time). It is never returned as
// a silent zero value.
var ErrUnsupported = errors.New("eventfold: not supported by this database")

// Ops is the whole set of store operations every dialect implements,
// bound to a pool or to one transaction. Inputs are already validated by
// the caller (package eventfold refuses bad input before any SQL).
type Ops interface {
	Log
	Checkpoints
	Commands
	CommitMarkers
	Archive
	Stats
	Positions
	Errors
	Savepoints
	Notifications
	// Capabilities tells which optional operations work on this database.
	Capabilities() Capabilities
	// StoreIdentity returns the random id migration 00009 made ("" when
	// that migration is not applied).
	StoreIdentity(ctx context.Context) (string, error)
	// Exec runs a statement that returns no rows. It is the escape hatch
	// for users' own SQL; the store itself never builds SQL outside the
	// dialects.
	Exec(ctx context.Context, query string, args ...any) error
}

// Capabilities lists the optional parts of the contract. An operation of
// a part that is false returns ErrUnsupported.
type Capabilities struct {
	// CommitMarkers: WriteCommitMarker, ClaimCommitMarker and
	// PruneCommitMarkers work (not on SQLite: it runs in the process, no
	// connection can lose a COMMIT's reply).
	CommitMarkers bool
	// PositionCheck: positions derive from the server's state (PostgreSQL
	// transaction ids, MySQL/MariaDB AUTO_INCREMENT) and CheckPositions can
	// find them behind the log.
	// Elsewhere CheckPositions returns a PositionCheck with Applicable
	// false and no error.
	PositionCheck bool
	// Notify: Notify, EnableNotifyTrigger and DisableNotifyTrigger work
	// (PostgreSQL's LISTEN/NOTIFY).
	Notify bool
	// MaxSavepoints bounds the savepoints one transaction should take
	// (0: no bound). PostgreSQL's is below its 64-entry subtransaction
	// cache, beyond which every snapshot gets slower.
	MaxSavepoints int
	// DensePositions: positions are consecutive (a rolled-back append
	// leaves no hole), so the distance between two positions counts the
	// events between them, archived ones included. SQLite's AUTOINCREMENT
	// counter and SQL Server's counter row are rolled back with their
	// transaction; PostgreSQL's positions derive from transaction ids, and
	// MySQL's AUTO_INCREMENT values (since migration 00015) are lost with a
	// rollback.
	DensePositions bool
	// CommitPipeline: the Ops implement CommitPipeline, so the last writes
	// of a transaction can go to the database with its COMMIT, in one
	// round trip (PostgreSQL through pgxdriver; not database/sql).
	CommitPipeline bool
	// SingleWriter: one write transaction at a time in the whole database
	// (SQLite: every write transaction begins IMMEDIATE and takes the
	// database's write lock). Group commit then runs one batch at a time:
	// a second committer would only wait for the lock with a batch it took
	// too early, and both batches would be smaller.
	SingleWriter bool
	// HeadLags: committed events can stay unreadable for a while, Head
	// below LastPosition, until appends that began before them end
	// (PostgreSQL: a transaction holding the snapshot horizon back;
	// MySQL/MariaDB: an append still running with a lower position). A
	// reader whose read came back short of what it knows committed must
	// read again when they end: nothing announces that moment. Elsewhere
	// a read sees every event committed before it started.
	HeadLags bool
}

// CommitPipeline queues writes, on the Ops of one transaction, to be sent
// with that transaction's COMMIT (Driver.Commit) in one round trip
// (Capabilities.CommitPipeline). When a queued write fails, COMMIT is not
// run: the driver's Commit returns a *QueuedWriteError and nothing of the
// transaction commits.
type CommitPipeline interface {
	// QueueRecordCommand queues RecordCommand's write. A record of the
	// same id in scope that another transaction committed first (the write
	// waits for it) fails the COMMIT with ErrDuplicateCommand instead of
	// being reported as duplicate.
	QueueRecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) error
	// QueueCommitMarker queues WriteCommitMarker's write.
	QueueCommitMarker(ctx context.Context, id string) error
}

// WriteDeferrer is a driver that can defer a reducer's writes to the
// transaction's next statement or its COMMIT (orchestrator's
// WithDeferredWrites; pgxdriver only). The orchestrator finds it on the
// Driver with a type assertion; a driver without it runs every reducer's
// writes at once.
type WriteDeferrer[TTx any] interface {
	// DeferWrites returns a view of tx whose statements without results
	// are queued instead of run (their results report nothing: no rows
	// affected). Queued statements go to the database before tx's next
	// statement of any kind, or with COMMIT; one that fails aborts the
	// transaction, and that statement (or the driver's Commit, then
	// through a *QueuedWriteError with Index -1 when COMMIT was sent in
	// the same pipeline, directly otherwise) returns onError's mapping of
	// its error. ok is false when tx cannot defer (it is returned as is).
	DeferWrites(tx TTx, onError func(error) error) (view TTx, ok bool)
	// FlushDeferred sends what is queued on tx now and returns the
	// mapped error of the first write that failed.
	FlushDeferred(ctx context.Context, tx TTx) error
}

// ErrDuplicateCommand is a queued RecordCommand that found the command id
// already recorded in its scope (see CommitPipeline).
var ErrDuplicateCommand = errors.New("eventfold: command id already recorded")

// QueuedWriteError is a Commit that failed at the write queued at Index
// (0 for the first one queued, see CommitPipeline; -1 for a write
// deferred by WriteDeferrer) rather than at COMMIT.
// When the database server reported Err (Errors.ServerReported), COMMIT
// was not run and nothing committed; otherwise the connection failed and
// the outcome is as unknown as a lost COMMIT's.
type QueuedWriteError struct {
	Index int
	Err   error
}

func (e *QueuedWriteError) Error() string {
	return fmt.Sprintf("eventfold: write %d queued with COMMIT: %v", e.Index, e.Err)
}

func (e *QueuedWriteError) Unwrap() error { return e.Err }

// Log reads and appends the event log.
type Log interface {
	LogReader
	// Append appends events to one stream after checking expected, and
	// returns them as recorded. A version mismatch returns
	// *eventfold.WrongExpectedVersionError; a duplicate event id
	// eventfold.ErrDuplicateEventID.
	Append(ctx context.Context, streamID string, expected ExpectedVersion, events []EventData) ([]Event, error)
	// AppendMany appends to several streams in one call: the same checks
	// and results as calling Append for each element in order (the result
	// at index i is appends[i]'s events as recorded). On the first failure
	// it returns *AppendManyError naming the element; the dialect may have
	// written part of the batch, so the caller's transaction (or savepoint)
	// must be rolled back.
	AppendMany(ctx context.Context, appends []StreamAppend) ([][]Event, error)
}

// StreamAppend is one stream's part of an AppendMany.
type StreamAppend struct {
	StreamID string
	Expected ExpectedVersion
	Events   []EventData
}

// AppendManyError is AppendMany's failure: Index is the element that
// failed, Err what Append would have returned for it (errors.Is/As see
// through it).
type AppendManyError struct {
	Index int
	Err   error
}

func (e *AppendManyError) Error() string {
	return fmt.Sprintf("eventfold: append %d of the batch: %v", e.Index, e.Err)
}

func (e *AppendManyError) Unwrap() error { return e.Err }

// LogReader is the read side of the log.
type LogReader interface {
	// ReadStream reads up to limit events of one stream, forward from
	// version from (inclusive), or backward from it when backward is set
	// (from < 1 then means the stream's last event).
	ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]Event, error)
	// ReadAll reads up to limit events with GlobalPosition >= from, in
	// position order, only up to the gap-free horizon: an event that a
	// still-running transaction may yet commit is never passed over.
	ReadAll(ctx context.Context, from int64, limit int) ([]Event, error)
	// Head returns the highest position at or below the gap-free horizon
	// (0 for an empty log).
	Head(ctx context.Context) (int64, error)
	// LastPosition returns the highest committed position, horizon or not
	// (0 for an empty log). It equals Head except where Capabilities.HeadLags
	// (PostgreSQL, MySQL/MariaDB): the difference is the lag that running
	// transactions cause.
	LastPosition(ctx context.Context) (int64, error)
	// StreamVersion returns a stream's current version (0: no stream).
	StreamVersion(ctx context.Context, streamID string) (int64, error)
}

// CheckpointRow is one durable subscription's checkpoint.
type CheckpointRow struct {
	Name      string
	Position  int64
	UpdatedAt time.Time // UTC
}

// Checkpoints are package listener's subscription checkpoints and leases
// (migration 00003_subscriptions).
type Checkpoints interface {
	// GetCheckpoint returns a checkpoint; found is false when there is none.
	GetCheckpoint(ctx context.Context, name string) (pos int64, found bool, err error)
	// CreateCheckpoint creates a checkpoint at pos; an existing one is left alone.
	CreateCheckpoint(ctx context.Context, name string, pos int64) error
	// AdvanceCheckpoint moves a checkpoint from expected to pos, and
	// reports false when it was not at expected.
	AdvanceCheckpoint(ctx context.Context, name string, expected, pos int64) (bool, error)
	// SetCheckpoint sets (or creates) a checkpoint at pos.
	SetCheckpoint(ctx context.Context, name string, pos int64) error
	// DeleteCheckpoint deletes a checkpoint and its lease.
	DeleteCheckpoint(ctx context.Context, name string) error
	// ListCheckpoints returns every checkpoint, in name order.
	ListCheckpoints(ctx context.Context) ([]CheckpointRow, error)
	// AcquireLease takes or renews the lease on name for owner, for ttl by
	// the database clock, and reports whether owner holds it afterwards.
	AcquireLease(ctx context.Context, name, owner string, ttl time.Duration) (bool, error)
	// LeaseOwner returns who holds an unexpired lease on name ("" for nobody).
	LeaseOwner(ctx context.Context, name string) (string, error)
	// ReleaseLease gives up owner's lease on name.
	ReleaseLease(ctx context.Context, name, owner string) error
}

// Commands are the orchestrator's idempotency records (migrations
// 00002_commands and 00007_command_scope).
type Commands interface {
	// LookupCommand returns the record of command id in scope: the
	// recorded command name, payload hash ("" for records made before
	// migration 00007) and event references (opaque JSON).
	LookupCommand(ctx context.Context, scope, id string) (commandType, payloadHash string, refs []byte, found bool, err error)
	// RecordCommand records command id in scope. It reports duplicate
	// (and no error) when the id is already recorded in scope, typically
	// by a concurrent dispatch that committed first.
	RecordCommand(ctx context.Context, scope, id, commandType, payloadHash string, refs []byte) (duplicate bool, err error)
	// PruneCommands deletes records older than before; it returns how many.
	PruneCommands(ctx context.Context, before time.Time) (int64, error)
}

// CommitMarkers resolve a lost COMMIT reply (migration 00009): a random id
// written inside each transaction, looked up afterwards. Optional
// (Capabilities.CommitMarkers).
type CommitMarkers interface {
	// WriteCommitMarker records id inside the transaction the Ops run on.
	WriteCommitMarker(ctx context.Context, id string) error
	// ClaimCommitMarker, run outside that transaction, reports whether it
	// committed; it waits while the transaction still runs, and afterwards
	// the transaction can no longer commit.
	ClaimCommitMarker(ctx context.Context, id string) (committed bool, err error)
	// PruneCommitMarkers deletes markers recorded before before.
	PruneCommitMarkers(ctx context.Context, before time.Time) (int64, error)
}

// Archive moves old events out of the hot table and back (migration
// 00004_archive).
type Archive interface {
	// ArchivedBefore returns the watermark: every event below it was
	// archived. 0 when nothing is, or migration 00004 is not applied.
	ArchivedBefore(ctx context.Context) (int64, error)
	// SetArchivedBefore sets the watermark.
	SetArchivedBefore(ctx context.Context, pos int64) error
	// SwapArchivedBefore moves the watermark from old to pos only if it is
	// still old, and reports whether it did (concurrent archive and
	// restore runs: the one that loses changes nothing).
	SwapArchivedBefore(ctx context.Context, old, pos int64) (bool, error)
	// FirstPositionRecordedAt returns the lowest position of an event
	// recorded at or after t; 0 when there is none.
	FirstPositionRecordedAt(ctx context.Context, t time.Time) (int64, error)
	// DeleteEventRange deletes the events with from <= position <= through
	// and returns how many it deleted. The streams table is left alone:
	// stream versions go on from where they were.
	DeleteEventRange(ctx context.Context, from, through int64) (int64, error)
	// RestoreEvents inserts events with their original positions, versions,
	// ids and times, skipping positions already present, makes sure each
	// stream's row exists with at least the highest restored version, and
	// returns how many it inserted.
	RestoreEvents(ctx context.Context, events []Event) (int64, error)
}

// CountRow is a number of events under one key (an event type, a day).
type CountRow struct {
	Key    string
	Events int64
}

// Stats are the log statistics behind `esctl stats` and the guarded
// migrate down.
type Stats interface {
	// StatsEventTypes returns every event type with its number of events,
	// most frequent first.
	StatsEventTypes(ctx context.Context) ([]CountRow, error)
	// StatsEventDays returns every day (YYYY-MM-DD, UTC) with its number
	// of events, newest first.
	StatsEventDays(ctx context.Context) ([]CountRow, error)
	// StatsTotals returns the number of events and streams in the hot
	// table and the lowest position there (0: empty).
	StatsTotals(ctx context.Context) (events, streams, firstPosition int64, err error)
	// StatsEventsAfter counts the events beyond position pos, up to the
	// gap-free horizon: a subscription's lag in events.
	StatsEventsAfter(ctx context.Context, pos int64) (int64, error)
	// StatsCommandRecords counts the orchestrator's command records
	// (migration 00002): what rolling that migration back would drop.
	StatsCommandRecords(ctx context.Context) (int64, error)
	// StatsEventsBeyond counts the committed events beyond position pos,
	// ignoring the head: beyond the head, those a running transaction
	// holds back from readers (PostgreSQL).
	StatsEventsBeyond(ctx context.Context, pos int64) (int64, error)
	// StatsHorizonHolder returns the transaction holding the head back,
	// nil when none does or the database has no such horizon.
	StatsHorizonHolder(ctx context.Context) (*HorizonHolder, error)
}

// HorizonHolder is the transaction that holds the gap-free read horizon
// back (PostgreSQL: the oldest running transaction with a transaction
// id, in any database of the cluster).
type HorizonHolder struct {
	// PID is its server process (0: a prepared transaction).
	PID int64
	// XIDAge is how many transaction ids ago it began writing.
	XIDAge int64
	// Age is how long ago its transaction began.
	Age time.Duration
	// State, Database, User and Application are what the server shows;
	// Query the start of its current or last statement ("" or a
	// placeholder when the server does not show it to this user).
	State, Database, User, Application, Query string
}

// Positions checks that positions have not fallen behind the log
// (Capabilities.PositionCheck).
type Positions interface {
	// CheckPositions reports whether positions fell behind the log, and
	// with repair set, raises them above it. With repair it must run in a
	// transaction of its own.
	CheckPositions(ctx context.Context, repair bool) (PositionCheck, error)
}

// Errors classifies the database's errors, so that no error code is named
// outside the dialects.
type Errors interface {
	// ClassifyError wraps an error a retry of the whole transaction may
	// cure (serialization failure, deadlock, lock timeout, ...) so that
	// errors.Is(err, eventfold.ErrTransient) holds; other errors come back
	// unchanged.
	ClassifyError(err error) error
	// ServerReported tells whether err was sent by the database server
	// (it has an error code), as opposed to a lost connection: a COMMIT
	// the server answered with an error did not commit.
	ServerReported(err error) bool
	// UndefinedObject tells whether err says that a table, schema,
	// function, procedure or column a statement names does not exist: the
	// database's "no such table" (a column too, since a schema older than
	// the code lacks columns as well as tables). On its own it does not tell a schema
	// never installed from a user's missing table; Store.SchemaError
	// asks the migration table before it says ErrSchemaNotInstalled.
	UndefinedObject(err error) bool
	// PermissionDenied tells whether err says that the account may not
	// run the statement (no privilege on a table, schema, column or
	// routine): no retry cures it until a DBA grants it.
	PermissionDenied(err error) bool
}

// Savepoints mark a point inside the transaction the Ops run on, to roll
// back one command of a group commit without losing the others.
type Savepoints interface {
	// Savepoint sets (or moves) the savepoint name.
	Savepoint(ctx context.Context, name string) error
	// RollbackToSavepoint undoes everything since the savepoint name; the
	// transaction stays usable.
	RollbackToSavepoint(ctx context.Context, name string) error
}

// Notifications are the database's wake-up channel (PostgreSQL
// LISTEN/NOTIFY; Capabilities.Notify). The payload is a hint (a position
// at most), never an event.
type Notifications interface {
	// Notify sends payload on channel.
	Notify(ctx context.Context, channel, payload string) error
	// EnableNotifyTrigger attaches a trigger that notifies at every append
	// made by any writer, including plain SQL (the trigger function of
	// migration 00003 notifies the default channel).
	EnableNotifyTrigger(ctx context.Context) error
	// DisableNotifyTrigger detaches it.
	DisableNotifyTrigger(ctx context.Context) error
}
