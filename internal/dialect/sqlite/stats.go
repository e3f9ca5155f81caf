package sqlite

import (
	"context"
	"fmt"
	"github.com/eventfold/eventfold/internal/contract"
)

// Log statistics behind `esctl stats`.

// StatsEventTypes returns every event type with its number of events,
// most frequent first.
func (o *Ops) StatsEventTypes(ctx context.Context) ([]contract.CountRow, error) {
	out := []contract.CountRow{}
	rows, err := o.q.StatsEventTypes(ctx, o.db)
	if err != nil {
		return nil, fmt.Errorf("count events per type: %w", err)
	}
	for _, r := range rows {
		out = append(out, contract.CountRow{Key: r.EventType, Events: r.Events})
	}
	return out, nil
}

// StatsEventDays returns every day (YYYY-MM-DD, UTC) with its number
// of events, newest first.
func (o *Ops) StatsEventDays(ctx context.Context) ([]contract.CountRow, error) {
	out := []contract.CountRow{}
	rows, err := o.q.StatsEventDays(ctx, o.db)
	if err != nil {
		return nil, fmt.Errorf("count events per day: %w", err)
	}
	for _, r := range rows {
		out = append(out, contract.CountRow{Key: r.Day, Events: r.Events})
	}
	return out, nil
}

// StatsTotals returns the number of events and streams in the hot table
// and the lowest position there (0: empty).
func (o *Ops) StatsTotals(ctx context.Context) (events, streams, firstPosition int64, err error) {
	r, err := o.q.StatsTotals(ctx, o.db)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count events and streams: %w", err)
	}
	return r.Events, r.Streams, r.FirstPosition, nil
}

// StatsCommandRecords counts the orchestrator's command records.
func (o *Ops) StatsCommandRecords(ctx context.Context) (int64, error) {
	n, err := o.q.StatsCommandRecords(ctx, o.db)
	if err != nil {
		return 0, fmt.Errorf("count command records: %w", err)
	}
	return n, nil
}

// StatsEventsBeyond counts the committed events beyond pos, ignoring the
// head.
func (o *Ops) StatsEventsBeyond(ctx context.Context, pos int64) (int64, error) {
	n, err := o.q.StatsEventsBeyond(ctx, o.db, pos)
	if err != nil {
		return 0, fmt.Errorf("count events beyond %d: %w", pos, err)
	}
	return n, nil
}

// StatsHorizonHolder returns nil: the head here waits for no transaction
// but those that hold positions it counts (see Head).
func (o *Ops) StatsHorizonHolder(context.Context) (*contract.HorizonHolder, error) { return nil, nil }

// StatsEventsAfter counts the events beyond position pos, up to the
// head: a subscription's lag in events.
func (o *Ops) StatsEventsAfter(ctx context.Context, pos int64) (int64, error) {
	n, err := o.q.StatsEventsAfter(ctx, o.db, pos)
	if err != nil {
		return 0, fmt.Errorf("count events after %d: %w", pos, err)
	}
	return n, nil
}
