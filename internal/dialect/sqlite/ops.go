// Package sqlite implements eventfold's store operations for SQLite
// (modernc.org/sqlite through database/sql). SQLite has one writer at a
// time, so the rowid (global_position) order is the commit order.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/contract"
	"github.com/eventfold/eventfold/internal/dbsqlc/sqlitedb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// Ops implements eventfold.Ops on SQLite.
type Ops struct {
	db dialect.DB
	q  *sqlitedb.Queries
}

var _ contract.Ops = (*Ops)(nil)

// New returns the operations bound to db (a *sql.DB or a *sql.Tx).
func New(db dialect.DB) *Ops { return &Ops{db: db, q: sqlitedb.New()} }

// TimeLayout is how recorded_at is stored: UTC, ISO 8601, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Append implements eventfold.Ops. On a *sql.DB it runs in a transaction
// of its own: its statements (read the version, advance the stream, insert
// the events) must be all or nothing.
func (o *Ops) Append(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	pool, ok := o.db.(*sql.DB)
	if !ok {
		return o.appendInSavepoint(ctx, streamID, expected, events)
	}
	tx, err := pool.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin append transaction: %w", interpretError(err, streamID, expected))
	}
	out, err := New(tx).appendOn(ctx, streamID, expected, events)
	if err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit append: %w", interpretError(err, streamID, expected))
	}
	return out, nil
}

// appendInSavepoint appends inside the caller's transaction, all or
// nothing: SQLite undoes only the failing statement, so an append that
// fails at its second event (a duplicate event id) would leave the stream
// advanced and its first event inserted in the caller's transaction, and a
// caller that handles the error and commits its other work would store
// half an append. The savepoint makes a failed append leave no trace, as a
// failed statement does on PostgreSQL.
func (o *Ops) appendInSavepoint(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	if _, err := o.db.ExecContext(ctx, `SAVEPOINT eventfold_append`); err != nil {
		return nil, fmt.Errorf("append: savepoint: %w", interpretError(err, streamID, expected))
	}
	out, err := o.appendOn(ctx, streamID, expected, events)
	if err != nil {
		// Undo even when ctx ended: the caller's transaction lives on.
		uctx := context.WithoutCancel(ctx)
		if _, rerr := o.db.ExecContext(uctx, `ROLLBACK TO eventfold_append`); rerr != nil {
			return nil, errors.Join(err, fmt.Errorf("append: roll back to its savepoint: %w", rerr))
		}
		_, _ = o.db.ExecContext(uctx, `RELEASE eventfold_append`)
		return nil, err
	}
	if _, err := o.db.ExecContext(ctx, `RELEASE eventfold_append`); err != nil {
		return nil, fmt.Errorf("append: release savepoint: %w", interpretError(err, streamID, expected))
	}
	return out, nil
}

// appendOn appends inside the write transaction o.db is.
func (o *Ops) appendOn(ctx context.Context, streamID string, expected eventfold.ExpectedVersion, events []eventfold.EventData) ([]eventfold.Event, error) {
	n := int64(len(events))
	var current int64
	if expected == eventfold.Any {
		// Nothing to check: one statement creates or advances the stream.
		v, err := o.q.AdvanceStream(ctx, o.db, sqlitedb.AdvanceStreamParams{StreamID: streamID, Version: n})
		if err != nil {
			return nil, interpretError(err, streamID, expected)
		}
		current = v - n
	} else {
		v, err := o.StreamVersion(ctx, streamID)
		if err != nil {
			return nil, err
		}
		if !expected.Satisfied(v) {
			return nil, &eventfold.WrongExpectedVersionError{StreamID: streamID, Expected: expected, Actual: v}
		}
		if _, err := o.q.AdvanceStream(ctx, o.db, sqlitedb.AdvanceStreamParams{StreamID: streamID, Version: n}); err != nil {
			return nil, interpretError(err, streamID, expected)
		}
		current = v
	}
	out := make([]eventfold.Event, len(events))
	for i, e := range events {
		version := current + int64(i) + 1
		row, err := o.q.InsertEvent(ctx, o.db, sqlitedb.InsertEventParams{
			StreamID: streamID, StreamVersion: version, EventID: e.ID,
			EventType: e.Type, Data: string(e.Data), Metadata: string(e.Metadata),
		})
		if err != nil {
			return nil, interpretError(err, streamID, expected)
		}
		at, err := parseTime(row.RecordedAt)
		if err != nil {
			return nil, err
		}
		out[i] = eventfold.Event{
			GlobalPosition: row.GlobalPosition, StreamID: streamID, StreamVersion: version,
			ID: e.ID, Type: e.Type, Data: e.Data, Metadata: e.Metadata, RecordedAt: at,
		}
	}
	return out, nil
}

// ReadStream implements eventfold.Ops.
func (o *Ops) ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]eventfold.Event, error) {
	var rows []sqlitedb.EventfoldEvent
	var err error
	if backward {
		if from < 1 {
			from = math.MaxInt64
		}
		rows, err = o.q.ReadStreamBackward(ctx, o.db, sqlitedb.ReadStreamBackwardParams{StreamID: streamID, FromVersion: from, MaxCount: int64(dialect.ReadLimitClamp(limit))})
	} else {
		rows, err = o.q.ReadStreamForward(ctx, o.db, sqlitedb.ReadStreamForwardParams{StreamID: streamID, FromVersion: from, MaxCount: int64(dialect.ReadLimitClamp(limit))})
	}
	if err != nil {
		return nil, interpretError(err, streamID, eventfold.Any)
	}
	return fromRows(rows)
}

// ReadAll implements eventfold.Ops. With one writer at a time every
// committed row is final in rowid order, so no horizon is needed.
func (o *Ops) ReadAll(ctx context.Context, from int64, limit int) ([]eventfold.Event, error) {
	rows, err := o.q.ReadAll(ctx, o.db, sqlitedb.ReadAllParams{FromPosition: from, MaxCount: int64(dialect.ReadLimitClamp(limit))})
	if err != nil {
		return nil, interpretError(err, "", eventfold.Any)
	}
	return fromRows(rows)
}

// Head implements eventfold.Ops.
func (o *Ops) Head(ctx context.Context) (int64, error) {
	h, err := o.q.Head(ctx, o.db)
	if err != nil {
		return 0, interpretError(err, "", eventfold.Any)
	}
	return h, nil
}

// StreamVersion implements eventfold.Ops.
func (o *Ops) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	v, err := o.q.StreamVersion(ctx, o.db, streamID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, interpretError(err, streamID, eventfold.Any)
	}
	return v, nil
}

// Exec implements eventfold.Ops.
func (o *Ops) Exec(ctx context.Context, query string, args ...any) error {
	_, err := o.db.ExecContext(ctx, query, args...)
	if err != nil {
		return interpretError(err, "", eventfold.Any)
	}
	return nil
}

func fromRows(rows []sqlitedb.EventfoldEvent) ([]eventfold.Event, error) {
	out := make([]eventfold.Event, len(rows))
	for i, r := range rows {
		at, err := parseTime(r.RecordedAt)
		if err != nil {
			return nil, err
		}
		out[i] = eventfold.Event{
			GlobalPosition: r.GlobalPosition, StreamID: r.StreamID, StreamVersion: r.StreamVersion,
			ID: r.EventID, Type: r.EventType, Data: json.RawMessage(r.Data), Metadata: json.RawMessage(r.Metadata),
			RecordedAt: at,
		}
	}
	return out, nil
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: recorded_at %q: %w", s, err)
	}
	return t.UTC(), nil
}

// SQLite result codes (https://sqlite.org/rescode.html).
const (
	codeBusy             = 5
	codeLocked           = 6
	codeConstraintUnique = 2067
	codeConstraintPK     = 1555
)

// interpretError maps SQLite errors to eventfold's typed errors, once.
func interpretError(err error, streamID string, expected eventfold.ExpectedVersion) error {
	var coded interface{ Code() int }
	if !errors.As(err, &coded) {
		return err
	}
	switch code := coded.Code(); {
	case code == codeConstraintUnique || code == codeConstraintPK:
		msg := err.Error()
		switch {
		case strings.Contains(msg, "eventfold_events.event_id"):
			return dialect.DuplicateEventID(err)
		case strings.Contains(msg, "eventfold_events.stream_id"):
			return &eventfold.WrongExpectedVersionError{StreamID: streamID, Expected: expected, Actual: -1}
		}
	case code&0xff == codeBusy || code&0xff == codeLocked:
		return dialect.Transient(err)
	}
	return err
}

// LastPosition implements eventfold.Ops. Positions commit in order here, so
// the highest committed position is the head.
func (o *Ops) LastPosition(ctx context.Context) (int64, error) { return o.Head(ctx) }
