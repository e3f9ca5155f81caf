package mssql

import (
	"context"
	"fmt"

	"github.com/eventfold/eventfold/internal/contract"
)

// Log statistics behind `esctl stats`, in hand-written T-SQL.

// StatsEventTypes returns every event type with its number of events,
// most frequent first. The length is part of the group: SQL Server's
// comparison (GROUP BY included) ignores trailing spaces, and types
// recorded before migration 00005 may still differ only by them.
func (o *Ops) StatsEventTypes(ctx context.Context) ([]contract.CountRow, error) {
	return o.statsRows(ctx, "count events per type", `
SELECT event_type, COUNT_BIG(*) AS events FROM eventfold.events
GROUP BY event_type, DATALENGTH(event_type) ORDER BY events DESC, event_type`)
}

// StatsEventDays returns every day (YYYY-MM-DD, UTC) with its number
// of events, newest first.
func (o *Ops) StatsEventDays(ctx context.Context) ([]contract.CountRow, error) {
	return o.statsRows(ctx, "count events per day", `
SELECT CONVERT(char(10), recorded_at, 23) AS day, COUNT_BIG(*) AS events FROM eventfold.events
GROUP BY CONVERT(char(10), recorded_at, 23) ORDER BY day DESC`)
}

func (o *Ops) statsRows(ctx context.Context, what, query string) ([]contract.CountRow, error) {
	out := []contract.CountRow{}
	rows, err := o.db.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var n int64
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("%s: %w", what, interpretError(err))
		}
		out = append(out, contract.CountRow{Key: k, Events: n})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, interpretError(err))
	}
	return out, nil
}

// StatsTotals returns the number of events and streams in the hot table
// and the lowest position there (0: empty).
func (o *Ops) StatsTotals(ctx context.Context) (events, streams, firstPosition int64, err error) {
	err = o.db.QueryRowContext(ctx, `
SELECT (SELECT COUNT_BIG(*) FROM eventfold.events),
       (SELECT COUNT_BIG(*) FROM eventfold.streams),
       (SELECT COALESCE(MIN(global_position), 0) FROM eventfold.events)`).Scan(&events, &streams, &firstPosition)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("count events and streams: %w", interpretError(err))
	}
	return events, streams, firstPosition, nil
}

// StatsCommandRecords counts the orchestrator's command records.
func (o *Ops) StatsCommandRecords(ctx context.Context) (n int64, err error) {
	if err = o.db.QueryRowContext(ctx, `SELECT COUNT_BIG(*) FROM eventfold.commands`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count command records: %w", interpretError(err))
	}
	return n, nil
}

// StatsEventsBeyond counts the committed events beyond pos, ignoring the
// head.
func (o *Ops) StatsEventsBeyond(ctx context.Context, pos int64) (n int64, err error) {
	if err = o.db.QueryRowContext(ctx, `SELECT COUNT_BIG(*) FROM eventfold.events WHERE global_position > @p1`, pos).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events beyond %d: %w", pos, interpretError(err))
	}
	return n, nil
}

// StatsHorizonHolder returns nil: the head waits for no transaction it
// could name.
func (o *Ops) StatsHorizonHolder(context.Context) (*contract.HorizonHolder, error) { return nil, nil }

// StatsEventsAfter counts the events beyond position pos: a subscription's
// lag in events.
func (o *Ops) StatsEventsAfter(ctx context.Context, pos int64) (int64, error) {
	var n int64
	err := o.db.QueryRowContext(ctx, `SELECT COUNT_BIG(*) FROM eventfold.events WHERE global_position > @p1`, pos).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count events after %d: %w", pos, interpretError(err))
	}
	return n, nil
}
