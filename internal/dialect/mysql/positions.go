package mysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold"
)

// Positions after a move (sql/mysql/00018). Since 00015 new positions come
// from eventfold_events' AUTO_INCREMENT, which InnoDB keeps above the rows
// the table holds, and no higher: positions that left the table (archived,
// truncated) are forgotten by a TRUNCATE, by ALTER TABLE ... AUTO_INCREMENT
// on an emptied table, and by a dump loaded into a freshly migrated
// database. The log has reached, as far as the database can tell, the
// highest of:
//   - the highest event in the table;
//   - the archive watermark - 1;
//   - eventfold_position.last_position, the floor that 00018's append
//     procedures refuse to go below (raised by archive, by the repair,
//     and since 00019 by readers' gate takes, to what they proved settled:
//     see headAndFloor);
//   - the highest subscription checkpoint.
// The positions are "moved" when AUTO_INCREMENT is at or below that.

// positionsQuery reads AUTO_INCREMENT and the four marks in one statement.
// MySQL 8 serves information_schema.TABLES.AUTO_INCREMENT from a cache
// (information_schema_stats_expiry, a day by default) unless the statement
// sets it to 0; MariaDB reads it live and takes the hint for a comment.
// AUTO_INCREMENT is NULL before 00015 (positions then came from
// last_position + 1).
const positionsQuery = `SELECT /*+ SET_VAR(information_schema_stats_expiry = 0) */
    (SELECT t.AUTO_INCREMENT FROM information_schema.TABLES t
      WHERE t.TABLE_SCHEMA = DATABASE() AND t.TABLE_NAME = 'eventfold_events'),
    COALESCE((SELECT MAX(global_position) FROM eventfold_events), 0),
    COALESCE((SELECT MAX(archived_before) FROM eventfold_archive_watermark), 0),
    COALESCE((SELECT MAX(last_position) FROM eventfold_position), 0),
    COALESCE((SELECT MAX(position) FROM eventfold_checkpoints), 0)`

type positionMarks struct {
	next                      int64 // lowest position an append can get now
	autoIncrement             sql.NullInt64
	maxEvent, watermark       int64
	lastPosition, checkpoints int64
}

// floor is the highest position the log has reached.
func (m positionMarks) floor() int64 {
	return max(m.maxEvent, m.watermark-1, m.lastPosition, m.checkpoints, 0)
}

func (m positionMarks) moved() bool { return m.next <= m.floor() }

func (o *Ops) readPositionMarks(ctx context.Context) (positionMarks, error) {
	var m positionMarks
	err := o.db.QueryRowContext(ctx, positionsQuery).Scan(&m.autoIncrement, &m.maxEvent, &m.watermark, &m.lastPosition, &m.checkpoints)
	if err != nil {
		return m, interpretError(err)
	}
	m.next = m.lastPosition + 1
	if m.autoIncrement.Valid {
		m.next = m.autoIncrement.Int64
	}
	return m, nil
}

// CheckPositions implements contract.Positions: it reports whether
// AUTO_INCREMENT would hand out a position the log has already reached and,
// with repair, raises it (and the floor, last_position) above every such
// position. The repair must run in a READ COMMITTED transaction of its own
// (Store.CheckPositions opens one): it takes the gate row FOR UPDATE, which
// waits for every append in flight (each holds the gate in share mode from
// before it allocates a position until it ends) and holds new ones back
// until the transaction commits, so no append allocates while AUTO_INCREMENT
// is read and raised. AUTO_INCREMENT is raised without DDL: an insert with
// an explicit position floor+1, rolled back at once, moves InnoDB's counter
// to floor+2 (the counter only ever goes up, and a rollback does not take
// it back); floor+1 stays a dead position, which readers pass. ALTER TABLE
// would commit the transaction (and the gate with it) before it runs, and
// sets the counter to the value given even when appends have taken it
// higher since it was read.
func (o *Ops) CheckPositions(ctx context.Context, repair bool) (eventfold.PositionCheck, error) {
	m, err := o.readPositionMarks(ctx)
	if err != nil {
		return eventfold.PositionCheck{}, err
	}
	if !m.moved() || !repair {
		return positionReport(m, m, false), nil
	}
	// Under the gate: nothing allocates until commit.
	var gate int64
	if err := o.db.QueryRowContext(ctx, `SELECT last_position FROM eventfold_position WHERE id = 1 FOR UPDATE`).Scan(&gate); err != nil {
		return eventfold.PositionCheck{}, fmt.Errorf("lock eventfold_position: %w", interpretError(err))
	}
	before, err := o.readPositionMarks(ctx)
	if err != nil {
		return eventfold.PositionCheck{}, err
	}
	floor := before.floor()
	if _, err := o.db.ExecContext(ctx, `UPDATE eventfold_position SET last_position = GREATEST(last_position, ?) WHERE id = 1`, floor); err != nil {
		return eventfold.PositionCheck{}, fmt.Errorf("raise the position floor to %d: %w", floor, interpretError(err))
	}
	if before.autoIncrement.Valid && before.next <= floor {
		if err := o.raiseAutoIncrement(ctx, floor+1); err != nil {
			return eventfold.PositionCheck{}, err
		}
	}
	after, err := o.readPositionMarks(ctx)
	if err != nil {
		return eventfold.PositionCheck{}, err
	}
	if after.moved() {
		return eventfold.PositionCheck{}, fmt.Errorf("eventfold_events AUTO_INCREMENT is still %d after raising it above %d", after.next, after.floor())
	}
	return positionReport(before, after, before.moved()), nil
}

// raiseAutoIncrement makes InnoDB's counter for eventfold_events hand out
// positions above pos: it inserts a row at pos and rolls it back. Call it
// with the gate held FOR UPDATE, in a transaction; pos must be above every
// event (a floor above AUTO_INCREMENT is).
func (o *Ops) raiseAutoIncrement(ctx context.Context, pos int64) error {
	if _, err := o.db.ExecContext(ctx, `SAVEPOINT eventfold_position_repair`); err != nil {
		return fmt.Errorf("raise AUTO_INCREMENT: %w", interpretError(err))
	}
	id := uuid.NewString()
	_, err := o.db.ExecContext(ctx, `INSERT INTO eventfold_events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
VALUES (?, ?, 1, ?, 'eventfold.position_repair', '{}', '{}', UTC_TIMESTAMP(6))`,
		pos, "$eventfold-position-repair-"+id, id)
	if err != nil {
		return fmt.Errorf("raise AUTO_INCREMENT above %d: %w", pos, interpretError(err))
	}
	if _, err := o.db.ExecContext(ctx, `ROLLBACK TO SAVEPOINT eventfold_position_repair`); err != nil {
		return fmt.Errorf("raise AUTO_INCREMENT: %w", interpretError(err))
	}
	return nil
}

func positionReport(before, after positionMarks, repaired bool) eventfold.PositionCheck {
	floor := before.floor()
	res := eventfold.PositionCheck{
		Applicable: true, Moved: before.moved(), Repaired: repaired,
		OldOffset: before.next, NewOffset: after.next,
		LastPosition: floor, NextPosition: after.next,
	}
	detail := fmt.Sprintf("events up to %d, archive watermark %d, position floor %d, highest checkpoint %d",
		before.maxEvent, before.watermark, before.lastPosition, before.checkpoints)
	switch {
	case repaired:
		res.Message = fmt.Sprintf("positions repaired: the log reached position %d (%s) but eventfold_events' AUTO_INCREMENT was %d (emptied by TRUNCATE, reset by ALTER TABLE or a dump into a new database?); raised to %d, new positions start there",
			floor, detail, before.next, after.next)
	case res.Moved:
		res.Message = fmt.Sprintf("positions need repair: the log reached position %d (%s) but eventfold_events' AUTO_INCREMENT is %d (emptied by TRUNCATE, reset by ALTER TABLE or a dump into a new database?): new events would land below readers and subscribers; run esctl doctor --repair",
			floor, detail, before.next)
	default:
		res.Message = fmt.Sprintf("positions ok: the log reached position %d, new positions start at %d", floor, before.next)
	}
	return res
}
