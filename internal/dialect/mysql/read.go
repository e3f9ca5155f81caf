package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// ReadStream reads up to limit events of one stream, forward from version
// from, or backward from it (from < 1: from the stream's last event).
func (o *Ops) ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]eventfold.Event, error) {
	n := int32(dialect.ReadLimitClamp(limit))
	if backward {
		if from < 1 {
			from = math.MaxInt64
		}
		rows, err := o.q.ReadStreamBackward(ctx, o.db, mysqldb.ReadStreamBackwardParams{StreamID: streamID, FromVersion: from, Limit: n})
		if err != nil {
			return nil, interpretError(err)
		}
		return eventsFromRows(rows), nil
	}
	rows, err := o.q.ReadStreamForward(ctx, o.db, mysqldb.ReadStreamForwardParams{StreamID: streamID, FromVersion: from, Limit: n})
	if err != nil {
		return nil, interpretError(err)
	}
	return eventsFromRows(rows), nil
}

// ReadAll reads up to limit events with GlobalPosition >= from, in order,
// never passing over a position that holds, or may yet hold, a committed
// event.
//
// Positions come from AUTO_INCREMENT since migration 00015, so they commit
// out of order, and a rolled-back append leaves a dead position. So the
// plain read is trusted only as far as its positions follow on from from
// without a gap. At a gap, fillGap reads everything from the gap up to the
// last row the plain read saw again with one locking read (latest committed rows, waiting on an uncommitted
// one); a position still missing after that may have been allocated by an
// append whose row is not in the index yet, so fillGap takes the gate (see
// takeGate) and reads once more: what is missing then is dead for good
// (rolled back, archived) and is passed. (Under the counter lock of the
// migrations before 00015 the same re-read was needed: MariaDB copies a new
// read view from a lock-free hash of running transactions while commits go
// on, so a view could show a later commit without an earlier one.) Gaps are
// rare (a commit racing the read), dead ones rarer, so the common read
// costs one query; nothing is skipped on a timeout, ever.
func (o *Ops) ReadAll(ctx context.Context, from int64, limit int) ([]eventfold.Event, error) {
	n := dialect.ReadLimitClamp(limit)
	rows, err := o.q.ReadAll(ctx, o.db, mysqldb.ReadAllParams{FromPosition: from, Limit: int32(n)})
	if err != nil {
		return nil, interpretError(err)
	}
	expect := max(from, 1) // positions start at 1
	out := make([]eventRow, 0, len(rows))
	for _, r := range rows {
		if r.GlobalPosition != expect {
			break
		}
		out = append(out, eventRow(r))
		expect++
	}
	if len(out) == len(rows) {
		return eventsFromRows(out), nil
	}
	// A gap below a committed row: settle everything below the last row
	// seen at once (one locking read, at most one gate, whatever the
	// number of holes), then that row.
	gapReads.Add(1)
	last := eventRow(rows[len(rows)-1])
	fill, whole, err := o.fillGap(ctx, expect, last.GlobalPosition, n-len(out))
	if err != nil {
		return nil, err
	}
	out = append(out, fill...)
	if whole && len(out) < n { // fill covers [expect, last) whole
		out = append(out, last)
	}
	return eventsFromRows(out[:min(len(out), n)]), nil
}

// fillGap returns the committed rows in [from, before), at most limit,
// where before is a position the caller saw committed, once every position
// in the range that may still commit has: first a locking read; if that
// leaves a position missing above what this pool has settled already, the
// gate and a second locking read. whole tells whether the rows settle the
// whole range; when the gate is busy (see tryGate) they are only the part
// of it proven complete, up to the first position that may still commit.
func (o *Ops) fillGap(ctx context.Context, from, before int64, limit int) (rows []eventRow, whole bool, err error) {
	// The locking read waits on uncommitted rows: briefly (see tryShort);
	// ok false means a row in the range stays locked by a running append.
	read := func() (rows []eventRow, ok bool, err error) {
		ok, err = o.tryShort(ctx, func(db dialect.DB) error {
			fill, err := o.q.ReadAllGap(ctx, db, mysqldb.ReadAllGapParams{
				FromPosition: from, BeforePosition: before, Limit: int32(limit),
			})
			rows = toEventRows(fill)
			return err
		})
		if err != nil {
			return nil, false, fmt.Errorf("re-read positions [%d, %d) below a committed one: %w", from, before, interpretError(err))
		}
		return rows, ok, nil
	}
	// What this pool had settled before the locking read: a watermark
	// raised after the read started says nothing about what the read saw.
	settled := o.settled()
	var mark *settledMark
	if settled != nil {
		mark = settled.Load()
	}
	fill, ok, err := read()
	if err != nil || !ok {
		return nil, false, err
	}
	if complete(fill, from, before, limit) {
		return fill, true, nil
	}
	// The highest committed position before the gate: once the gate is
	// granted, every position below it is settled, not only this range (a
	// reader catching up over old dead positions takes the gate once).
	hf, err := o.headAndFloor(ctx, mark)
	if err != nil {
		return nil, false, err
	}
	top, floor := hf.head, hf.floor
	was := validMark(settled, mark, hf)
	if settled != nil && before <= was && was <= top {
		// Every append that may hold a position below before had ended
		// when the read started. (was above top: the pool's database was
		// emptied since.)
		return fill, true, nil
	}
	if before-1 <= floor {
		// Every position of the range is at or below the position floor:
		// none may commit any more (see headAndFloor). The floor was read
		// after the locking read, so read once more: what is missing now
		// is dead for good.
		fill, ok, err = read()
		if err != nil || !ok {
			return nil, false, err
		}
		return fill, true, nil
	}
	gateTakes.Add(1)
	got, err := o.tryGate(ctx, top)
	if err != nil {
		return nil, false, fmt.Errorf("wait for appends that may hold positions [%d, %d): %w", from, before, err)
	}
	if !got {
		// An append is running long: return what is proven, stop at the
		// first position that may still commit (a lag, never a skip).
		return provenPrefix(fill, from, was), false, nil
	}
	raiseSettled(settled, top, hf.headAnchor)
	fill, ok, err = read()
	if err != nil || !ok {
		return nil, false, err
	}
	return fill, true, nil
}

// provenPrefix returns rows (in position order, from from on) up to the
// first missing position that is not below settled (the pool's watermark,
// 0 outside a pool): everything it returns is in order with no position
// before it that may still commit.
func provenPrefix(rows []eventRow, from, settled int64) []eventRow {
	expect := from
	for i, r := range rows {
		for expect < r.GlobalPosition && expect < settled {
			expect++ // dead: below the watermark and missing
		}
		if r.GlobalPosition != expect {
			return rows[:i]
		}
		expect++
	}
	return rows
}

// settledBelow holds, per pool, a position up to which every append that
// took a position has ended (learnt from the gate, or from a run of
// committed positions above an older mark): a missing position there is
// dead, no gate needed. Only pools: a transaction's view of the log is its
// own.
//
// The mark is a fact about one database, and the pool outlives what an
// operator does to it: a restore of an older dump under the running
// process (DROP TABLE + CREATE TABLE ... AUTO_INCREMENT=6 + the old rows)
// puts AUTO_INCREMENT back below a mark of 20, and once the restored log
// grows past 20 again a reader trusting the mark passed a position still
// held by an open append, for good (TestAttack4OlderDumpRestoredUnderARunningProcess).
// So the mark keeps the identity of the event at its position (its event
// id and recorded_at, the anchor) and is trusted only while that very
// event is still there, asked in the statement that reads the head and
// the floor (headAndFloor): no extra round trip. While the anchor is in
// the table, AUTO_INCREMENT is above it (InnoDB keeps it above every row,
// and a restore that brings the row back brings a counter above it), so
// no position up to the mark can be handed out again, and every append
// that held one has ended (a DROP or TRUNCATE waits for them). Anything
// that makes positions up to the mark reusable (an older dump, TRUNCATE,
// DELETE + ALTER TABLE ... AUTO_INCREMENT) removes the anchor, or puts an
// event with another id or time there: the mark is dropped and the pool
// proves from the floor again (the gate; lag, never a skip). Archiving the
// anchor drops it too, harmlessly: the floor is above it by then.
var settledBelow sync.Map // *sql.DB -> *atomic.Pointer[settledMark]

// settledMark is a pool's settled watermark: every position up to pos is
// settled, as long as the event at pos is the one named by anchor (see
// settledBelow).
type settledMark struct {
	pos    int64
	anchor string
}

func (o *Ops) settled() *atomic.Pointer[settledMark] {
	pool, ok := o.db.(*sql.DB)
	if !ok {
		return nil
	}
	v, _ := settledBelow.LoadOrStore(pool, new(atomic.Pointer[settledMark]))
	return v.(*atomic.Pointer[settledMark])
}

// raiseSettled raises a pool's watermark (nil outside a pool) to pos,
// anchored on the event at pos (its anchor as headAndFloor and
// rowAnchor spell it; empty: pos has no event to anchor on, nothing is
// raised).
func raiseSettled(settled *atomic.Pointer[settledMark], pos int64, anchor string) {
	if settled == nil || anchor == "" {
		return
	}
	next := &settledMark{pos: pos, anchor: anchor}
	for {
		cur := settled.Load()
		if cur != nil && cur.pos >= pos {
			return
		}
		if settled.CompareAndSwap(cur, next) {
			return
		}
	}
}

// validMark returns the position of mark, the pool's watermark loaded
// before hf was read, if hf found its anchor still in place, and 0
// otherwise; a mark whose anchor is gone is dropped from the pool (see
// settledBelow).
func validMark(settled *atomic.Pointer[settledMark], mark *settledMark, hf headFloor) int64 {
	if mark == nil {
		return 0
	}
	if hf.markAnchor == mark.anchor {
		return mark.pos
	}
	settled.CompareAndSwap(mark, nil)
	return 0
}

// The settled watermark in the database (sql/mysql/00019). A pool's own
// watermark (settledBelow) is lost with its process: a new process (a
// restarted service, esctl, a new subscriber) knew nothing settled, and
// while an append ran longer than the gate's wait its Head stopped at the
// first dead position anywhere in history, so a subscription started at
// Head delivered the history again. So when a pool takes the gate it also
// writes what the gate proves into the database: the gate is taken with
// an UPDATE that raises eventfold_position.last_position, the position
// floor of 00018, to the highest position committed before the gate
// (takeGate), in place of the SELECT ... FOR UPDATE (the same row, the
// same lock, one statement: the wait is the one the proof needs anyway).
// The floor is the one mark a fresh pool may trust: the append procedures
// (00018) refuse a position at or below it, so whatever happens to
// AUTO_INCREMENT later (TRUNCATE, ALTER TABLE, a dump into another
// database) no position at or below it can commit any more; and the dump
// that must carry it (mysqldump --replace, see the README) carries it. A
// mark kept in a row of its own would not be enforced: after such a move,
// appends would commit below it and readers trusting it skip them. Every
// reader reads the floor with the highest position (headAndFloor, the same
// statement), and passes missing positions at or below it without the
// gate. A DBA who lowers it costs lag, never loss; who raises it makes
// appends refuse (31004) until the repair raises AUTO_INCREMENT above it.

// headAndFloorQuery reads the highest committed position, the floor, the
// anchor of the highest event and the anchor of the event at the pool's
// mark (see settledBelow) in one statement: a consistent read, it waits for
// no lock, and the three lookups beside the head's are one index dive
// each. An anchor is the event id and recorded_at (to the microsecond) of
// an event, as rowAnchor spells them. The mark's position is written into
// the text (headAndFloorAt), not bound: a statement with arguments costs
// go-sql-driver a prepare, an execute and a close (three round trips
// instead of one, on every poll of Store.WaitHead) unless the DSN sets
// interpolateParams.
const headAndFloorQuery = `SELECT CAST(COALESCE((SELECT MAX(global_position) FROM eventfold_events), 0) AS SIGNED),
    CAST(COALESCE((SELECT last_position FROM eventfold_position WHERE id = 1), 0) AS SIGNED),
    COALESCE((SELECT CONCAT(event_id, '@', DATE_FORMAT(recorded_at, '%Y-%m-%d %H:%i:%s.%f'))
              FROM eventfold_events ORDER BY global_position DESC LIMIT 1), ''),
    COALESCE((SELECT CONCAT(event_id, '@', DATE_FORMAT(recorded_at, '%Y-%m-%d %H:%i:%s.%f'))
              FROM eventfold_events WHERE global_position = `

// headAndFloorAt is headAndFloorQuery for the mark at position at.
func headAndFloorAt(at int64) string {
	return headAndFloorQuery + strconv.FormatInt(at, 10) + `), '')`
}

// headFloor is what headAndFloorQuery reads.
type headFloor struct {
	head, floor int64
	headAnchor  string // the anchor of the event at head ("" for an empty log)
	markAnchor  string // the anchor of the event at the mark's position ("" if none)
}

// rowAnchor spells the anchor of r as headAndFloorQuery does.
func rowAnchor(r eventRow) string {
	return r.EventID + "@" + r.RecordedAt.Format("2006-01-02 15:04:05.000000")
}

// headAndFloor returns the highest committed position and the position
// floor (every position at or below the floor has committed or never
// will), with the anchors of the head's event and of mark's (nil: none).
func (o *Ops) headAndFloor(ctx context.Context, mark *settledMark) (headFloor, error) {
	var hf headFloor
	var at int64
	if mark != nil {
		at = mark.pos
	}
	if err := o.db.QueryRowContext(ctx, headAndFloorAt(at)).Scan(&hf.head, &hf.floor, &hf.headAnchor, &hf.markAnchor); err != nil {
		return headFloor{}, interpretError(err)
	}
	return hf, nil
}

// complete tells whether rows hold every position from from on, up to
// before or limit rows.
func complete(rows []eventRow, from, before int64, limit int) bool {
	want := min(before-from, int64(limit))
	if int64(len(rows)) != want {
		return false
	}
	return want == 0 || rows[len(rows)-1].GlobalPosition == from+want-1
}

// takeGate locks the gate row (eventfold_position, id 1) FOR UPDATE and
// lets it go. Every append holds that row in share mode from before it
// allocates positions until it ends, so once this lock is granted every
// position allocated before it belongs to an append that has committed or
// rolled back. Appends that start meanwhile wait for it (InnoDB queues new
// share requests behind a waiting exclusive one), for as long as the
// appends before it take to end: so the wait is kept short (see
// tryGate). On a pool the lock lasts one statement; inside a transaction
// it is held until that transaction ends. On a pool a deadlock (an append
// waiting on a stream row held by another that waits on the gate behind
// this reader) is retried: the reader holds nothing else.
// Inside the caller's transaction it is not: InnoDB has rolled that whole
// transaction back, and a retry would run on the same connection outside
// any transaction, so the caller's later statements would autocommit one by
// one and its COMMIT succeed with the writes before the read lost. The
// deadlock goes back to the caller (transient: retry the transaction).
//
// On a pool the gate is taken with raiseFloorAtGate, which also records
// what the gate proves: every position up to top (the highest committed
// position, read before the gate) is settled (see headAndFloor). When the
// server refuses the write (an account without UPDATE on
// eventfold_position, a read-only server or transaction), the gate is
// taken with the plain locking read instead and nothing is recorded: the
// refused statement took no lock. Inside the caller's transaction nothing
// is written either: the write would be the caller's, and undone with it.
func (o *Ops) takeGate(ctx context.Context, db dialect.DB, top int64) error {
	_, pool := o.db.(*sql.DB)
	persist := pool && top > 0
	for attempt := 1; ; attempt++ {
		var err error
		if persist {
			var res sql.Result
			if res, err = db.ExecContext(ctx, raiseFloorAtGate, top); err == nil {
				if n, _ := res.RowsAffected(); n == 1 {
					return nil
				}
				// Nothing changed: the floor was as high already, or there
				// is no row 1 (then no lock was taken either).
				var floor int64
				err = db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1`).Scan(&floor)
			} else if refusedWrite(err) {
				persist = false
				attempt--
				continue
			}
		} else {
			var id int64
			err = db.QueryRowContext(ctx, takeGate).Scan(&id)
		}
		if err == nil {
			return nil
		}
		var me *gomysql.MySQLError
		if pool && attempt < 5 && errors.As(err, &me) && me.Number == errDeadlock {
			continue
		}
		if errors.Is(err, sql.ErrNoRows) {
			return errors.New("eventfold_position has no row 1")
		}
		return interpretError(err)
	}
}

// takeGate is the reader's side of the gate; sqlc does not model a
// statement that only locks.
const takeGate = `SELECT id FROM eventfold_position WHERE id = 1 FOR UPDATE`

// raiseFloorAtGate takes the gate as takeGate does (an UPDATE locks the
// row FOR UPDATE, changed or not) and raises the floor to what the gate
// proves settled (sql/mysql/00019); it writes, and its commit flushes the
// log, only when the floor moves.
const raiseFloorAtGate = `UPDATE eventfold_position SET last_position = GREATEST(last_position, ?) WHERE id = 1`

// The gate's wait is bounded: while the reader waits, every new append
// waits behind it, so one long append transaction plus one reader would
// stop all writes for innodb_lock_wait_timeout (50 s by default). The
// session's innodb_lock_wait_timeout is lowered for the one statement and
// restored after (MySQL 8 has no FOR UPDATE WAIT n). The previous value is
// kept in a session variable on the same connection.
const (
	gateWaitLower   = `SET @eventfold_gate_lwt = @@SESSION.innodb_lock_wait_timeout, SESSION innodb_lock_wait_timeout = 1`
	gateWaitRestore = `SET SESSION innodb_lock_wait_timeout = @eventfold_gate_lwt`
)

// After a gate wait timed out, a pool does not try the gate again for a
// while (doubling from gateCooldownMin to gateCooldownMax, reset when the
// gate is granted): a poller (Store.WaitHead, every 10 ms) would otherwise
// stall the appends for a second again and again.
const (
	gateCooldownMin = 250 * time.Millisecond
	gateCooldownMax = 2 * time.Second
)

type gateCooldown struct {
	mu    sync.Mutex
	until time.Time
	next  time.Duration
}

var gateCooldowns sync.Map // *sql.DB -> *gateCooldown

func (o *Ops) cooldown() *gateCooldown {
	pool, ok := o.db.(*sql.DB)
	if !ok {
		return nil
	}
	v, _ := gateCooldowns.LoadOrStore(pool, new(gateCooldown))
	return v.(*gateCooldown)
}

// gateTimeouts counts the gate waits that timed out or were skipped in a
// cooldown in this process.
var gateTimeouts atomic.Int64

// GateTimeouts returns how many gate takes timed out or were skipped in a
// cooldown in this process, for tests and measurements.
func GateTimeouts() int64 { return gateTimeouts.Load() }

// tryGate takes the gate (takeGate), waiting at most one second; top is
// the highest committed position read before it, recorded as settled on a
// pool. It reports false, and no error, when the wait timed out (an append
// is running long) or the pool is in its cooldown after such a timeout:
// the caller then settles for what it can prove without the gate.
func (o *Ops) tryGate(ctx context.Context, top int64) (bool, error) {
	return o.tryShort(ctx, func(db dialect.DB) error { return o.takeGate(ctx, db, top) })
}

// tryShort runs f (a locking statement) with the session's lock wait
// lowered to one second (gateWaitLower), on one connection of the pool or
// in the caller's transaction, and restores it. It reports false, and no
// error, when f's lock wait timed out, or, without running f, when the pool
// is in its cooldown after such a timeout. Inside a transaction a timeout
// rolls back only the statement (unless the server runs with
// innodb_rollback_on_timeout: then it is an error, the caller's transaction
// is gone).
func (o *Ops) tryShort(ctx context.Context, f func(db dialect.DB) error) (bool, error) {
	cd := o.cooldown()
	if cd != nil {
		cd.mu.Lock()
		busy := time.Now().Before(cd.until)
		cd.mu.Unlock()
		if busy {
			gateTimeouts.Add(1)
			return false, nil
		}
	}
	err := o.shortLockWait(ctx, f)
	var me *gomysql.MySQLError
	if err != nil && errors.As(err, &me) && me.Number == errLockWaitTimeout {
		if cd == nil {
			var rollsBack int64
			if err := o.db.QueryRowContext(ctx, `SELECT @@innodb_rollback_on_timeout`).Scan(&rollsBack); err != nil {
				return false, interpretError(err)
			}
			if rollsBack != 0 {
				return false, err
			}
		}
		gateTimeouts.Add(1)
		if cd != nil {
			cd.mu.Lock()
			cd.next = min(max(2*cd.next, gateCooldownMin), gateCooldownMax)
			cd.until = time.Now().Add(cd.next)
			cd.mu.Unlock()
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cd != nil {
		cd.mu.Lock()
		cd.next, cd.until = 0, time.Time{}
		cd.mu.Unlock()
	}
	return true, nil
}

// shortLockWait runs f on one connection of the pool, or in the caller's
// transaction, with the session's innodb_lock_wait_timeout lowered to one
// second, and restores it. f's error is returned as it is (a 1205 lock wait
// timeout stays reachable with errors.As).
func (o *Ops) shortLockWait(ctx context.Context, f func(db dialect.DB) error) error {
	db := o.db
	restored := false
	if pool, ok := o.db.(*sql.DB); ok {
		conn, err := pool.Conn(ctx)
		if err != nil {
			return interpretError(err)
		}
		defer func() {
			if !restored {
				// The session may still have the short lock wait: the
				// connection must not go back to the pool.
				_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			}
			_ = conn.Close()
		}()
		db = conn
	}
	if _, err := db.ExecContext(ctx, gateWaitLower); err != nil {
		return interpretError(err)
	}
	fErr := f(db)
	if _, err := db.ExecContext(ctx, gateWaitRestore); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			// The context ended during f or the restore (the driver then
			// drops the connection: "bad connection"): the caller is told
			// so, as errors.Is(err, context.Canceled) expects.
			err = cerr
		}
		return fmt.Errorf("restore the session's innodb_lock_wait_timeout: %w", interpretError(err))
	}
	restored = true
	return fErr
}

// Head returns the position up to which the log is complete: the highest
// committed position, once every append that may have allocated a position
// below it has ended (the gate, see takeGate; positions commit out of
// order since migration 00015; on a pool, when every position from the
// last settled one up to the highest has committed, no gate is needed). 0
// for an empty log. Settled is what this pool proved, or the position
// floor in the database (headAndFloor), whichever is higher: a new process
// starts from what others proved. When the gate is busy (an append running
// long, see tryGate) Head returns the highest position it can prove
// complete without it: the end of the run of committed positions from the
// settled one, below the first position that may still commit (a lag, as
// PostgreSQL's read horizon).
func (o *Ops) Head(ctx context.Context) (int64, error) {
	settled := o.settled()
	var mark *settledMark
	if settled != nil {
		mark = settled.Load()
	}
	hf, err := o.headAndFloor(ctx, mark)
	h, floor := hf.head, hf.floor
	if err != nil || h == 0 {
		return h, err
	}
	if floor >= h {
		// Nothing at or below the floor may commit any more.
		return h, nil
	}
	// Everything up to the floor is settled, and up to the pool's mark
	// while its anchor is in place (see settledBelow).
	from := max(floor, min(validMark(settled, mark, hf), h))
	// No hole since the settled position: every position up to h has
	// committed, no gate needed (a poller such as Store.WaitHead then
	// never makes appends wait). Only for a short stretch: one page.
	if settled != nil && h-from <= provenPage {
		top, anchor, err := o.provenHead(ctx, from, h)
		if err != nil {
			return 0, err
		}
		if top == h {
			raiseSettled(settled, h, anchor)
			return h, nil
		}
	}
	got, err := o.tryGate(ctx, h)
	if err != nil {
		return 0, fmt.Errorf("wait for appends below the head %d: %w", h, err)
	}
	if got {
		raiseSettled(settled, h, hf.headAnchor)
		return h, nil
	}
	top, anchor, err := o.provenHead(ctx, from, h)
	if err != nil {
		return 0, err
	}
	// Every position up to from was settled, and from+1 .. top committed.
	raiseSettled(settled, top, anchor)
	return top, nil
}

// provenPage is the page provenHead reads.
const provenPage = 1000

// provenHead returns the end of the run of committed positions after from
// (a position up to which everything is settled), at most h, reading at
// most a few pages of the log, and the anchor of the event there ("" when
// the run is empty: top is from).
func (o *Ops) provenHead(ctx context.Context, from, h int64) (top int64, anchor string, err error) {
	const pages = 4
	top = min(from, h)
	for i := 0; i < pages && top < h; i++ {
		rows, err := o.q.ReadAll(ctx, o.db, mysqldb.ReadAllParams{FromPosition: top + 1, Limit: int32(min(h-top, provenPage))})
		if err != nil {
			return 0, "", interpretError(err)
		}
		for _, r := range rows {
			if r.GlobalPosition != top+1 || top >= h {
				return top, anchor, nil
			}
			top++
			anchor = rowAnchor(eventRow(r))
		}
		if len(rows) < provenPage {
			break
		}
	}
	return top, anchor, nil
}

// LastPosition returns the highest committed position (0 for an empty
// log), whether or not every position below it has committed yet.
func (o *Ops) LastPosition(ctx context.Context) (int64, error) {
	h, err := o.q.Head(ctx, o.db)
	if err != nil {
		return 0, interpretError(err)
	}
	return h, nil
}

// gateTakes counts the readers' gate takes in this process: a position
// found missing under the locking read (a dead position, or one allocated
// whose row was not in the index yet).
var gateTakes atomic.Int64

// GateTakes returns how many times ReadAll took the gate in this process,
// for tests and measurements (each take makes new appends wait for the
// running ones).
func GateTakes() int64 { return gateTakes.Load() }

// gapReads counts the reads of this process that found a gap below a
// committed row and settled it with the locking read (fillGap).
var gapReads atomic.Int64

// GapReads returns how many times ReadAll found a gap below a committed
// row in this process, for measurements: each such read waits, in its
// locking read, for the appends still running in the gap to end.
func GapReads() int64 { return gapReads.Load() }

// StreamVersion returns a stream's current version (0: no stream).
func (o *Ops) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	v, err := o.q.StreamVersion(ctx, o.db, streamID)
	if err != nil {
		return 0, interpretError(err)
	}
	return v, nil
}

// eventRow is the column list every event read selects. sqlc generates one
// row type per query (its table model orders the columns differently since
// migration 00005 changed their types), all convertible to this one.
type eventRow struct {
	GlobalPosition int64
	StreamID       string
	StreamVersion  int64
	EventID        string
	EventType      string
	Data           json.RawMessage
	Metadata       json.RawMessage
	RecordedAt     time.Time
}

// generatedEventRow lists the generated row types of the event reads.
type generatedEventRow interface {
	mysqldb.ReadAllRow | mysqldb.ReadAllGapRow | mysqldb.ReadStreamForwardRow | mysqldb.ReadStreamBackwardRow | eventRow
}

func toEventRows[R generatedEventRow](rows []R) []eventRow {
	out := make([]eventRow, len(rows))
	for i, r := range rows {
		out[i] = eventRow(r)
	}
	return out
}

// eventsFromRows converts generated rows into the library's events, so
// that generated types never leave this package.
func eventsFromRows[R generatedEventRow](rows []R) []eventfold.Event {
	out := make([]eventfold.Event, len(rows))
	for i, gr := range rows {
		r := eventRow(gr)
		out[i] = eventfold.Event{
			GlobalPosition: r.GlobalPosition,
			StreamID:       r.StreamID,
			StreamVersion:  r.StreamVersion,
			ID:             r.EventID,
			Type:           r.EventType,
			Data:           r.Data,
			Metadata:       r.Metadata,
			RecordedAt:     r.RecordedAt.UTC(),
		}
	}
	return out
}
