package eventfold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/eventfold/eventfold/internal/txguard"
)

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Limits bound what an append accepts. Defaults: see Limits.
	Limits Limits
	// Logger receives what the store repairs by itself (see
	// CheckPositions). Defaults to slog.Default().
	Logger *slog.Logger
}

// Store appends to and reads from the event log, through a Driver.
// It is safe for concurrent use.
type Store[TTx any] struct {
	driver Driver[TTx]
	limits Limits
	log    *slog.Logger
	// repairing is set while repairInBackground runs.
	repairing atomic.Bool
	// schema is the outcome of CheckWritable, once the database answered.
	schema atomic.Pointer[schemaCheck]
	// checking is held (a one-slot semaphore) by the CheckWritable that
	// reads the version through the pool, so that concurrent first checks
	// wait for its answer instead of each reading it.
	checking chan struct{}
}

// New returns a Store over d. cfg may be nil.
func New[TTx any](d Driver[TTx], cfg *Config) *Store[TTx] {
	if cfg == nil {
		cfg = &Config{}
	}
	return &Store[TTx]{driver: d, limits: cfg.Limits.withDefaults(), log: cfg.Logger, checking: make(chan struct{}, 1)}
}

// Driver returns the store's driver.
func (s *Store[TTx]) Driver() Driver[TTx] { return s.driver }

// Dialect returns the database dialect.
func (s *Store[TTx]) Dialect() Dialect { return s.driver.Dialect() }

// Limits returns the limits in force.
func (s *Store[TTx]) Limits() Limits { return s.limits }

// Close closes the driver (never a pool the caller passed in).
func (s *Store[TTx]) Close() error { return s.driver.Close() }

// InTx runs fn in a new transaction and commits it when fn returns nil;
// any error, a panic or runtime.Goexit rolls it back.
func (s *Store[TTx]) InTx(ctx context.Context, fn func(tx TTx) error) (err error) {
	tx, err := s.driver.Begin(ctx)
	if err != nil {
		return fmt.Errorf("eventfold: begin: %w", err)
	}
	committed := false
	defer txguard.RollbackUnless(ctx, s.driver, tx, &committed)
	if err = fn(tx); err != nil {
		return err
	}
	if err = s.driver.Commit(ctx, tx); err != nil {
		return fmt.Errorf("eventfold: commit: %w", err)
	}
	committed = true
	return nil
}

// Append appends events to stream streamID in a transaction of its own,
// after checking that the stream is at the expected version. Either every
// event is appended or none is. The events returned are as stored: their
// Data and Metadata are byte for byte what every reader will read (on
// PostgreSQL, jsonb's normal form, not necessarily the bytes sent).
//
// When the database refuses the append because it was moved to a new
// cluster (ErrPositionsBehind), Append repairs the positions
// (CheckPositions), logs what it did, and tries once more. When it is
// refused because a later transaction wrote to the stream first
// (ErrStreamOrder, PostgreSQL), it tries once more in a new transaction.
func (s *Store[TTx]) Append(ctx context.Context, streamID string, expected ExpectedVersion, events ...EventData) ([]Event, error) {
	prepared, err := prepareAppend(streamID, expected, events, s.limits)
	if err != nil {
		return nil, err
	}
	if err := s.CheckWritable(ctx); err != nil {
		return nil, wrapAppend(streamID, err)
	}
	var out []Event
	for attempt := 1; ; attempt++ {
		err = s.InTx(ctx, func(tx TTx) error {
			out, err = s.driver.OpsTx(tx).Append(ctx, streamID, expected, prepared)
			return err
		})
		if err = s.schemaErr(ctx, err); errors.Is(err, ErrSchemaNotInstalled) {
			return nil, err
		}
		if err == nil || attempt > 1 {
			break
		}
		if errors.Is(err, ErrStreamOrder) {
			// A later transaction wrote to the stream first; a new
			// transaction's positions land above it.
			continue
		}
		if !errors.Is(err, ErrPositionsBehind) {
			break
		}
		if _, rerr := s.CheckPositions(ctx, true); rerr != nil {
			return nil, wrapAppend(streamID, fmt.Errorf("%w (repair failed: %w)", err, rerr))
		}
	}
	if err != nil {
		return nil, wrapAppend(streamID, err)
	}
	return out, nil
}

// AppendTx appends inside the caller's transaction: the events commit or
// roll back with it. On error the caller must roll tx back (on PostgreSQL
// the transaction is aborted anyway). An error matching
// ErrPositionsBehind (also ErrTransient) means the database was moved and
// needs CheckPositions(ctx, true), which AppendTx cannot run inside the
// caller's transaction: it starts the repair in the background (it waits
// for tx to end), so that a retry after rolling back succeeds.
func (s *Store[TTx]) AppendTx(ctx context.Context, tx TTx, streamID string, expected ExpectedVersion, events ...EventData) ([]Event, error) {
	prepared, err := prepareAppend(streamID, expected, events, s.limits)
	if err != nil {
		return nil, err
	}
	if err := s.checkWritableTx(ctx, tx); err != nil {
		return nil, wrapAppend(streamID, err)
	}
	out, err := s.driver.OpsTx(tx).Append(ctx, streamID, expected, prepared)
	if err != nil {
		if errors.Is(err, ErrPositionsBehind) {
			s.repairInBackground(ctx)
		}
		return nil, wrapAppend(streamID, err)
	}
	return out, nil
}

// AppendManyTx appends to several streams inside the caller's
// transaction, with the same checks and results as calling AppendTx for
// each element in order: the result at index i is appends[i]'s events as
// recorded. A dialect with a multi-stream statement does it in a few
// statements for the whole batch rather than one append per element (group
// commit's batched mode appends all its commands' events with one call).
//
// Every element is validated first; bad input is refused with
// *AppendManyError naming the element before any SQL runs. A failure in
// the database is *AppendManyError too, naming the first element that
// failed; elements before it may have been written in tx, so the caller
// must roll tx (or its savepoint) back.
func (s *Store[TTx]) AppendManyTx(ctx context.Context, tx TTx, appends []StreamAppend) ([][]Event, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	prepared := make([]StreamAppend, len(appends))
	for i, a := range appends {
		evs, err := prepareAppend(a.StreamID, a.Expected, a.Events, s.limits)
		if err != nil {
			return nil, &AppendManyError{Index: i, Err: wrapAppend(a.StreamID, err)}
		}
		prepared[i] = StreamAppend{StreamID: a.StreamID, Expected: a.Expected, Events: evs}
	}
	if err := s.checkWritableTx(ctx, tx); err != nil {
		return nil, fmt.Errorf("eventfold: append to %d streams: %w", len(appends), err)
	}
	out, err := s.driver.OpsTx(tx).AppendMany(ctx, prepared)
	if err != nil {
		if errors.Is(err, ErrPositionsBehind) {
			s.repairInBackground(ctx)
		}
		var me *AppendManyError
		if errors.As(err, &me) && me.Index >= 0 && me.Index < len(appends) {
			return nil, &AppendManyError{Index: me.Index, Err: wrapAppend(appends[me.Index].StreamID, me.Err)}
		}
		return nil, fmt.Errorf("eventfold: append to %d streams: %w", len(appends), err)
	}
	if len(out) != len(appends) {
		return nil, fmt.Errorf("eventfold: append to %d streams: the database returned %d results", len(appends), len(out))
	}
	return out, nil
}

// repairInBackground runs CheckPositions(ctx, true) once at a time, off
// the caller's goroutine: the caller holds a transaction that the repair's
// lock waits for.
func (s *Store[TTx]) repairInBackground(ctx context.Context) {
	if !s.repairing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.repairing.Store(false)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if _, err := s.CheckPositions(ctx, true); err != nil {
			s.logger().ErrorContext(ctx, "eventfold: repairing positions failed", slog.String("error", err.Error()))
		}
	}()
}

func wrapAppend(streamID string, err error) error {
	var wev *WrongExpectedVersionError
	var ve *ValidationError
	if errors.As(err, &wev) || errors.As(err, &ve) {
		return err // already says which stream
	}
	return fmt.Errorf("eventfold: append to stream %q: %w", streamID, err)
}

// ReadStreamOptions selects events of one stream.
type ReadStreamOptions struct {
	// From is the first version to read (inclusive). Forward it defaults to
	// 1; backward, 0 means the stream's last event.
	From int64
	// Limit caps the number of events. Defaults to 1000.
	Limit int
	// Backward reads from From towards version 1.
	Backward bool
}

// DefaultReadLimit is the page size when a read sets no Limit.
const DefaultReadLimit = 1000

// ReadStream reads events of one stream. A stream that does not exist
// reads as no events. A read that reaches versions moved out by `esctl
// archive` fails with *ArchivedError (errors.Is ErrArchived), never
// silently returns less.
func (s *Store[TTx]) ReadStream(ctx context.Context, streamID string, opt ReadStreamOptions) ([]Event, error) {
	evs, err := s.readStream(ctx, s.driver.Ops(), streamID, opt)
	return evs, s.schemaErr(ctx, err)
}

// ReadStreamTx is ReadStream inside the caller's transaction.
func (s *Store[TTx]) ReadStreamTx(ctx context.Context, tx TTx, streamID string, opt ReadStreamOptions) ([]Event, error) {
	return s.readStream(ctx, s.driver.OpsTx(tx), streamID, opt)
}

func (s *Store[TTx]) readStream(ctx context.Context, ops Ops, streamID string, opt ReadStreamOptions) ([]Event, error) {
	if err := ValidateStreamID(streamID); err != nil {
		return nil, err
	}
	if opt.Limit < 0 {
		return nil, &ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is negative", opt.Limit)}
	}
	if opt.From < 0 {
		return nil, &ValidationError{Field: "from", Reason: fmt.Sprintf("version %d is negative", opt.From)}
	}
	if opt.Limit == 0 {
		opt.Limit = DefaultReadLimit
	}
	if !opt.Backward && opt.From == 0 {
		opt.From = 1
	}
	evs, err := ops.ReadStream(ctx, streamID, opt.From, opt.Limit, opt.Backward)
	if err == nil {
		err = checkArchivedStream(ctx, ops, streamID, opt.From, opt.Limit, opt.Backward, evs)
	}
	if err != nil {
		return nil, fmt.Errorf("eventfold: read stream %q: %w", streamID, err)
	}
	return evs, nil
}

// ReadAllOptions selects a slice of the whole log.
type ReadAllOptions struct {
	// From is the first global position to read (inclusive). Defaults to 0,
	// the start of the log.
	From int64
	// Limit caps the number of events. Defaults to 1000.
	Limit int
}

// ReadAll reads the whole log forward in global-position order. It never
// returns an event past one that a still-running transaction may yet
// commit, so a reader that continues from the last position it saw plus one
// neither skips nor repeats an event, whatever order transactions commit in.
// A long-running writer therefore delays readers (lag), never loses events.
// Reading from below the archive watermark fails with *ArchivedError.
func (s *Store[TTx]) ReadAll(ctx context.Context, opt ReadAllOptions) ([]Event, error) {
	evs, err := s.readAll(ctx, s.driver.Ops(), opt)
	return evs, s.schemaErr(ctx, err)
}

// ReadAllTx is ReadAll inside the caller's transaction.
func (s *Store[TTx]) ReadAllTx(ctx context.Context, tx TTx, opt ReadAllOptions) ([]Event, error) {
	return s.readAll(ctx, s.driver.OpsTx(tx), opt)
}

func (s *Store[TTx]) readAll(ctx context.Context, ops Ops, opt ReadAllOptions) ([]Event, error) {
	if opt.Limit < 0 {
		return nil, &ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is negative", opt.Limit)}
	}
	if opt.From < 0 {
		return nil, &ValidationError{Field: "from", Reason: fmt.Sprintf("position %d is negative", opt.From)}
	}
	if opt.Limit == 0 {
		opt.Limit = DefaultReadLimit
	}
	// The watermark is read on every call, before the events, and not
	// cached or skipped: the watermark moves down as well as up (esctl
	// restore), and an event found exactly at From proves nothing, because
	// a restore half done leaves [restored part] gap [watermark, ...) with
	// the watermark still above From (TestReadAllNeverSkipsAHalfRestoredRange).
	// Reading it only after the events would not do either: a restore
	// finishing between the two would pass a read that missed what it
	// restored.
	if err := CheckReadAll(ctx, ops, opt.From); err != nil {
		return nil, fmt.Errorf("eventfold: read all from %d: %w", opt.From, err)
	}
	evs, err := ops.ReadAll(ctx, opt.From, opt.Limit)
	if err != nil {
		return nil, fmt.Errorf("eventfold: read all from %d: %w", opt.From, err)
	}
	// And read again after the events. The two statements see two
	// snapshots: an archive that raised the watermark and deleted in
	// between left the first check passed and the read starting above
	// the deleted range (TestReadAllRacingArchiveNeverSkips). Archive
	// commits the watermark before it deletes, so a read that missed
	// deleted events sees the raised watermark here. An empty read missed
	// nothing it will not see next time, and costs no second query.
	if len(evs) > 0 {
		if err := CheckReadAll(ctx, ops, opt.From); err != nil {
			return nil, fmt.Errorf("eventfold: read all from %d: %w", opt.From, err)
		}
	}
	return evs, nil
}

// Head returns the position up to which the log is complete: every event at
// or below it that will ever commit has committed. 0 for an empty log; at
// least the archive watermark - 1 once events were archived (see HeadOf).
func (s *Store[TTx]) Head(ctx context.Context) (int64, error) {
	h, err := HeadOf(ctx, s.driver.Ops())
	if err = s.schemaErr(ctx, err); errors.Is(err, ErrSchemaNotInstalled) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("eventfold: head: %w", err)
	}
	return h, nil
}

// WaitHead waits until the log is complete up to pos (Head >= pos) and
// returns the head, or returns the last head seen with ctx's error when ctx
// ends first. It reads the head every 10ms. On PostgreSQL a running writing
// transaction anywhere in the cluster holds the head back; elsewhere the
// head reaches a committed position at once. Use it for read-your-writes:
// wait for an event just committed before reading the log for it.
func (s *Store[TTx]) WaitHead(ctx context.Context, pos int64) (int64, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		h, err := s.Head(ctx)
		if err != nil || h >= pos {
			return h, err
		}
		select {
		case <-ctx.Done():
			return h, ctx.Err()
		case <-t.C:
		}
	}
}

// LastPosition returns the highest position committed so far, whether or
// not the log is complete up to it (0 for an empty log). Head <= LastPosition;
// on PostgreSQL the gap is the delay that running transactions impose on
// readers. For monitoring and for proving that nothing was written: never
// read past Head.
func (s *Store[TTx]) LastPosition(ctx context.Context) (int64, error) {
	p, err := s.driver.Ops().LastPosition(ctx)
	if err = s.schemaErr(ctx, err); errors.Is(err, ErrSchemaNotInstalled) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("eventfold: last position: %w", err)
	}
	return p, nil
}

// StreamVersion returns the current version of a stream (0: no stream).
func (s *Store[TTx]) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	if err := ValidateStreamID(streamID); err != nil {
		return 0, err
	}
	v, err := s.driver.Ops().StreamVersion(ctx, streamID)
	if err != nil {
		return 0, fmt.Errorf("eventfold: version of stream %q: %w", streamID, err)
	}
	return v, nil
}

// Log is the non-generic view of a Store, for code that reads the log and
// keeps its own bookkeeping (checkpoints, leases) but never needs the
// driver's transaction type: listener.Tail, the checkpoint functions, the
// Notifier and the SSE handler take a Log. Every *Store[TTx] is one. The
// transactional parts (Store, the orchestrator, listener.NewTx) stay
// generic.
type Log interface {
	// Dialect tells which SQL the database speaks.
	Dialect() Dialect
	// ReadAll reads the whole log in position order (see Store.ReadAll).
	ReadAll(ctx context.Context, opt ReadAllOptions) ([]Event, error)
	// Head returns the highest position readers may read (see Store.Head).
	Head(ctx context.Context) (int64, error)
	// Ops returns the store/dialect contract's operations on the pool
	// (writes refused on a schema newer than this eventfold knows, see
	// Store.Ops).
	Ops() Ops
	// InOpsTx runs fn on the operations bound to one transaction, and
	// commits when fn returns nil (rolls back otherwise).
	InOpsTx(ctx context.Context, fn func(ops Ops) error) error
	// SchemaError turns the database's "no such table" into
	// ErrSchemaNotInstalled when the schema is not installed (see
	// Store.SchemaError).
	SchemaError(ctx context.Context, err error) error
}

// Ops returns the store/dialect contract's operations on the pool. Its
// writes to eventfold's tables (checkpoints, leases, command records, commit
// markers, the archive, appends, a positions repair, the notify trigger)
// first call CheckWritable: on a schema newer than this eventfold knows
// they fail with ErrSchemaNewer and write nothing; reads, Notify and Exec
// go on. Driver().Ops() is the driver's own, unguarded.
func (s *Store[TTx]) Ops() Ops { return guard(s.driver.Ops(), s.CheckWritable) }

// OpsTx returns the store/dialect contract's operations inside tx, its
// writes guarded as Ops's are (the first check reads the version through
// tx, see AppendTx).
func (s *Store[TTx]) OpsTx(tx TTx) Ops {
	return guard(s.driver.OpsTx(tx), func(ctx context.Context) error { return s.checkWritableTx(ctx, tx) })
}

// InOpsTx runs fn on the operations bound to one transaction (see InTx),
// guarded as OpsTx's are.
func (s *Store[TTx]) InOpsTx(ctx context.Context, fn func(ops Ops) error) error {
	return s.InTx(ctx, func(tx TTx) error { return fn(s.OpsTx(tx)) })
}

var _ Log = (*Store[struct{}])(nil)
