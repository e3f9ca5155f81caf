package postgres

import (
	"context"
	"math"

	"github.com/google/uuid"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dbsqlc/postgresdb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// ReadStream reads one stream forward from version from, or backward from
// it (from < 1 backward: from the last event).
func (o *Ops) ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]eventfold.Event, error) {
	n := int32(dialect.ReadLimitClamp(limit))
	var rows []postgresdb.EventfoldEvent
	var err error
	if backward {
		if from < 1 {
			from = math.MaxInt64
		}
		rows, err = o.q.ReadStreamBackward(ctx, o.db, postgresdb.ReadStreamBackwardParams{StreamID: streamID, FromVersion: from, MaxCount: n})
	} else {
		rows, err = o.q.ReadStreamForward(ctx, o.db, postgresdb.ReadStreamForwardParams{StreamID: streamID, FromVersion: from, MaxCount: n})
	}
	if err != nil {
		return nil, interpretError(err, streamID, eventfold.Any)
	}
	return eventsFromRows(rows), nil
}

// ReadAll reads the log in position order from position from, only below
// the snapshot horizon (see queries/postgres/events.sql). Inside a
// transaction that has written, the horizon is at most that transaction's
// own xid, so its own appends are not returned until it has committed.
func (o *Ops) ReadAll(ctx context.Context, from int64, limit int) ([]eventfold.Event, error) {
	rows, err := o.q.ReadAll(ctx, o.db, postgresdb.ReadAllParams{FromPosition: from, MaxCount: int32(dialect.ReadLimitClamp(limit))})
	if err != nil {
		return nil, interpretError(err, "", eventfold.Any)
	}
	return eventsFromRows(rows), nil
}

// Head returns the highest position below the snapshot horizon.
func (o *Ops) Head(ctx context.Context) (int64, error) {
	h, err := o.q.Head(ctx, o.db)
	if err != nil {
		return 0, interpretError(err, "", eventfold.Any)
	}
	return h, nil
}

// StreamVersion returns the stream's version; a missing stream is at 0.
func (o *Ops) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	v, err := o.q.StreamVersion(ctx, o.db, streamID)
	if isNoRows(err) {
		return 0, nil
	}
	if err != nil {
		return 0, interpretError(err, streamID, eventfold.Any)
	}
	return v, nil
}

// Exec runs a statement that returns no rows.
func (o *Ops) Exec(ctx context.Context, query string, args ...any) error {
	if _, err := o.db.Exec(ctx, query, args...); err != nil {
		return interpretError(err, "", eventfold.Any)
	}
	return nil
}

func eventsFromRows(rows []postgresdb.EventfoldEvent) []eventfold.Event {
	out := make([]eventfold.Event, len(rows))
	for i, r := range rows {
		out[i] = eventFromRow(r)
	}
	return out
}

// eventFromRow converts a generated row; generated types never leave this
// package.
func eventFromRow(r postgresdb.EventfoldEvent) eventfold.Event {
	return eventfold.Event{
		GlobalPosition: r.GlobalPosition,
		StreamID:       r.StreamID,
		StreamVersion:  r.StreamVersion,
		ID:             uuid.UUID(r.EventID.Bytes).String(),
		Type:           r.EventType,
		Data:           r.Data,
		Metadata:       r.Metadata,
		RecordedAt:     r.RecordedAt.Time.UTC(),
	}
}

// LastPosition returns the highest committed position, below the horizon
// or not.
func (o *Ops) LastPosition(ctx context.Context) (int64, error) {
	p, err := o.q.LastPosition(ctx, o.db)
	if err != nil {
		return 0, interpretError(err, "", eventfold.Any)
	}
	return p, nil
}

// CheckPositions runs eventfold.check_positions (sql/postgres/00006): a
// report, or with repair a repair that must run in a transaction of its own.
func (o *Ops) CheckPositions(ctx context.Context, repair bool) (eventfold.PositionCheck, error) {
	r, err := o.q.CheckPositions(ctx, o.db, repair)
	if err != nil {
		return eventfold.PositionCheck{}, interpretError(err, "", eventfold.Any)
	}
	return eventfold.PositionCheck{
		Applicable: true, Moved: r.Moved, Repaired: r.Repaired,
		OldOffset: r.OldOffset, NewOffset: r.NewOffset,
		LastPosition: r.LastPosition, NextPosition: r.NextPosition,
		Message: r.Message,
	}, nil
}
