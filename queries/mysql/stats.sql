-- Log statistics for esctl stats.

-- name: StatsEventTypes :many
SELECT event_type, CAST(COUNT(*) AS SIGNED) AS events
FROM eventfold_events
GROUP BY event_type
ORDER BY events DESC, event_type;

-- name: StatsEventDays :many
-- Days in UTC (recorded_at is stored in UTC), newest first.
SELECT CAST(DATE_FORMAT(recorded_at, '%Y-%m-%d') AS CHAR) AS day, CAST(COUNT(*) AS SIGNED) AS events
FROM eventfold_events
GROUP BY day
ORDER BY day DESC;

-- name: StatsTotals :one
SELECT CAST((SELECT COUNT(*) FROM eventfold_events) AS SIGNED) AS events,
       CAST((SELECT COUNT(*) FROM eventfold_streams) AS SIGNED) AS streams,
       CAST((SELECT COALESCE(MIN(global_position), 0) FROM eventfold_events) AS SIGNED) AS first_position;

-- name: StatsEventsAfter :one
-- How many events lie beyond a position (a subscription's lag in events).
SELECT CAST(COUNT(*) AS SIGNED) AS events
FROM eventfold_events
WHERE global_position > sqlc.arg(global_position);

-- name: StatsCommandRecords :one
-- How many command records the orchestrator keeps (migration 00002).
SELECT count(*) AS records FROM eventfold_commands;

-- name: StatsEventsBeyond :one
-- How many committed events lie beyond a position, ignoring the head.
SELECT count(*) AS events
FROM eventfold_events
WHERE global_position > sqlc.arg(global_position);
