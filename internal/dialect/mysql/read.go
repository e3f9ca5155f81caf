package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

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
// Positions are dense here: the procedure hands them out under the
// eventfold_position row lock, held to commit, and a rollback gives them
// back. That lock alone does not make a plain read safe: MariaDB copies a
// new read view from a lock-free hash of running transactions while
// commits go on, so a view can miss transaction T1 (still running when the
// copy passed it) and show T2, which took the counter after T1 committed:
// position 101 invisible, 102 visible, and a reader continuing after 102
// loses 101 for good. So the plain read is trusted only as far as its
// positions follow on from from without a gap. At a gap below a row it saw,
// ReadAllGap reads that range again with a locking read, which reads the
// latest committed rows rather than the view: everything below a committed
// position was committed before it (counter order), so what that read
// returns is all there ever will be, and a position it lacks is a dead hole
// (archived, or torn by a bare CALL before migration 00005) that may be
// passed. Gaps are rare (a commit racing the read), so the common read
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
			fill, err := o.q.ReadAllGap(ctx, o.db, mysqldb.ReadAllGapParams{
				FromPosition: expect, BeforePosition: r.GlobalPosition, Limit: int32(n - len(out)),
			})
			if err != nil {
				return nil, fmt.Errorf("re-read positions [%d, %d) below a committed one: %w", expect, r.GlobalPosition, interpretError(err))
			}
			out = append(out, toEventRows(fill)...)
			if len(out) >= n {
				break
			}
		}
		out = append(out, eventRow(r))
		expect = r.GlobalPosition + 1
		if len(out) >= n {
			break
		}
	}
	return eventsFromRows(out[:min(len(out), n)]), nil
}

// Head returns the highest committed position (0 for an empty log). Every
// position below it was handed out by a transaction that ended before the
// one at the head took the counter, so the log is complete up to it, and
// ReadAll returns all of it (see ReadAll for why a plain read alone may not).
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
