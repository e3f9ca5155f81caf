-- Log statistics for esctl stats.

-- name: StatsEventTypes :many
SELECT event_type, CAST(count(*) AS INTEGER) AS events
FROM eventfold_events
GROUP BY event_type
ORDER BY events DESC, event_type;

-- name: StatsEventDays :many
-- Days in UTC (recorded_at is stored as UTC text), newest first.
SELECT CAST(substr(recorded_at, 1, 10) AS TEXT) AS day, CAST(count(*) AS INTEGER) AS events
FROM eventfold_events
GROUP BY 1
ORDER BY 1 DESC;

-- name: StatsTotals :one
SELECT CAST((SELECT count(*) FROM eventfold_events) AS INTEGER) AS events,
       -- streams with events, and those whose events were all archived
       -- (appends do not write eventfold_streams since migration 00015)
       CAST((SELECT count(*) FROM (SELECT stream_id FROM eventfold_events
                                   UNION SELECT stream_id FROM eventfold_streams)) AS INTEGER) AS streams,
       CAST((SELECT coalesce(min(global_position), 0) FROM eventfold_events) AS INTEGER) AS first_position;

-- name: StatsEventsAfter :one
-- How many events lie beyond a position (a subscription's lag in events).
SELECT CAST(count(*) AS INTEGER) AS events
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
