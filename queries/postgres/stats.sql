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
       -- Streams with events in the hot table or a kept version (00015:
       -- appends no longer write eventfold.streams; archiving does).
       (SELECT count(*) FROM (SELECT stream_id FROM eventfold.events
                              UNION
                              SELECT stream_id FROM eventfold.streams) u)::bigint AS streams,
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

-- name: StatsEventsBeyond :one
-- How many committed events lie beyond a position, ignoring the horizon:
-- beyond the head, the events a running transaction holds back from readers.
SELECT count(*)::bigint AS events
FROM eventfold.events
WHERE global_position > sqlc.arg(global_position);

-- name: StatsHorizonHolder :many
-- The transaction that holds eventfold.horizon() back: the oldest running
-- transaction with a transaction id, in any database of the cluster
-- (a prepared transaction counts too). Another user's query text shows as
-- '<insufficient privilege>' unless pg_read_all_stats is granted.
SELECT h.pid::bigint AS pid, h.xid_age::bigint AS xid_age, h.age_seconds::float8 AS age_seconds,
       h.state::text AS state, h.database::text AS database, h.username::text AS username,
       h.application::text AS application, h.query::text AS query
FROM (
    SELECT a.pid AS pid, age(a.backend_xid) AS xid_age,
           coalesce(extract(epoch FROM clock_timestamp() - a.xact_start), 0) AS age_seconds,
           coalesce(a.state, '') AS state, coalesce(a.datname::text, '') AS database,
           coalesce(a.usename::text, '') AS username, coalesce(a.application_name, '') AS application,
           coalesce(left(a.query, 200), '') AS query
    FROM pg_catalog.pg_stat_activity a
    WHERE a.backend_xid IS NOT NULL
    UNION ALL
    SELECT 0, age(p.transaction), extract(epoch FROM clock_timestamp() - p.prepared),
           'prepared', p.database::text, p.owner::text, '', 'PREPARE TRANSACTION ' || quote_literal(p.gid)
    FROM pg_catalog.pg_prepared_xacts p
) h
ORDER BY h.xid_age DESC
LIMIT 1;
