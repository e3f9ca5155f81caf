package mysql

import (
	"context"
	"math"

	"github.com/eventfold/eventfold"
	"github.com/eventfold/eventfold/internal/dbsqlc/mysqldb"
	"github.com/eventfold/eventfold/internal/dialect"
)

// ReadStream reads up to limit events of one stream, forward from version
// from, or backward from it (from < 1: from the stream's last event).
func (o *Ops) ReadStream(ctx context.Context, streamID string, from int64, limit int, backward bool) ([]eventfold.Event, error) {
	n := int32(dialect.ReadLimitClamp(limit))
	var rows []mysqldb.EventfoldEvent
	var err error
	if backward {
		if from < 1 {
			from = math.MaxInt64
		}
		rows, err = o.q.ReadStreamBackward(ctx, o.db, mysqldb.ReadStreamBackwardParams{StreamID: streamID, FromVersion: from, Limit: n})
	} else {
		rows, err = o.q.ReadStreamForward(ctx, o.db, mysqldb.ReadStreamForwardParams{StreamID: streamID, FromVersion: from, Limit: n})
	}
	if err != nil {
		return nil, interpretError(err)
	}
	return eventsFromRows(rows), nil
}

// ReadAll reads up to limit events with GlobalPosition >= from. Positions
// are handed out under a row lock held to commit, so they become visible in
// order: a plain range read never passes over an event that commits later.
func (o *Ops) ReadAll(ctx context.Context, from int64, limit int) ([]eventfold.Event, error) {
	rows, err := o.q.ReadAll(ctx, o.db, mysqldb.ReadAllParams{FromPosition: from, Limit: int32(dialect.ReadLimitClamp(limit))})
	if err != nil {
		return nil, interpretError(err)
	}
	return eventsFromRows(rows), nil
}

// Head returns the highest committed position (0 for an empty log). Every
// position below it has committed or was never used, for the reason given
// at ReadAll.
func (o *Ops) Head(ctx context.Context) (int64, error) {
	h, err := o.q.Head(ctx, o.db)
	if err != nil {
		return 0, interpretError(err)
	}
	return h, nil
}

// StreamVersion returns a stream's current version (0: no stream).
func (o *Ops) StreamVersion(ctx context.Context, streamID string) (int64, error) {
	v, err := o.q.StreamVersion(ctx, o.db, streamID)
	if err != nil {
		return 0, interpretError(err)
	}
	return v, nil
}

// eventsFromRows converts generated rows into the library's events, so
// that generated types never leave this package.
func eventsFromRows(rows []mysqldb.EventfoldEvent) []eventfold.Event {
	out := make([]eventfold.Event, len(rows))
	for i, r := range rows {
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
