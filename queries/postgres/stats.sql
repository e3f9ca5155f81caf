-- Log statistics for esctl stats.

-- name: StatsEventTypes :many
SELECT event_type, count(*)::bigint AS events
FROM eventfold.events
GROUP BY event_type
ORDER BY events DESC, event_type;

-- name: StatsEventDays :many
-- Days in UTC, newest first.
SELECT to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')::text AS day, count(*)::bigint AS events
FROM eventfold.events
GROUP BY 1
ORDER BY 1 DESC;

-- name: StatsTotals :one
SELECT (SELECT count(*) FROM eventfold.events)::bigint AS events,
       (SELECT count(*) FROM eventfold.streams)::bigint AS streams,
       (SELECT coalesce(min(global_position), 0) FROM eventfold.events)::bigint AS first_position;

-- name: StatsEventsAfter :one
-- How many events lie beyond a position (a subscription's lag in events).
SELECT count(*)::bigint AS events
FROM eventfold.events
WHERE global_position > sqlc.arg(global_position)
  AND global_position < eventfold.horizon();

-- name: StatsCommandRecords :one
-- How many command records the orchestrator keeps (migration 00002).
SELECT count(*)::bigint AS records FROM eventfold.commands;
