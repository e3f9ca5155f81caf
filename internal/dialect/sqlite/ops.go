// Package sqlite implements eventfold's store operations for SQLite
// (modernc.org/sqlite through database/sql). SQLite has one writer at a
// time, so the rowid (global_position) order is the commit order.
package sqlite

import (
	"context"
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

// StreamVersion implements eventfold.Ops: the highest version among the
// stream's events, or its eventfold_streams row when archiving moved all
// of them out (see append.go).
func (o *Ops) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	v, err := o.q.StreamVersion(ctx, o.db, streamID)
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
