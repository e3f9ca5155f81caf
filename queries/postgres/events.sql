-- name: AppendEvents :many
-- All checks and position assignment happen in the function; see
-- sql/postgres/00001_events.sql.
SELECT a.global_position::bigint AS global_position,
       a.stream_version::bigint AS stream_version,
       a.recorded_at::timestamptz AS recorded_at
FROM eventfold.append_events(
    sqlc.arg(stream_id)::text,
    sqlc.arg(expected_version)::bigint,
    sqlc.arg(event_ids)::uuid[],
    sqlc.arg(event_types)::text[],
    sqlc.arg(data)::jsonb[],
    sqlc.arg(metadata)::jsonb[]
) AS a(global_position, stream_version, recorded_at);

-- name: ReadStreamForward :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold.events
WHERE stream_id = sqlc.arg(stream_id)
  AND stream_version >= sqlc.arg(from_version)
ORDER BY stream_version
LIMIT sqlc.arg(max_count);

-- name: ReadStreamBackward :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold.events
WHERE stream_id = sqlc.arg(stream_id)
  AND stream_version <= sqlc.arg(from_version)
ORDER BY stream_version DESC
LIMIT sqlc.arg(max_count);

-- name: ReadAll :many
-- Reads only below the gap-free horizon: every transaction whose xid is
-- below the snapshot's xmin has finished, and positions are xid << 20 + index.
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold.events
WHERE global_position >= sqlc.arg(from_position)
  AND global_position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20)
ORDER BY global_position
LIMIT sqlc.arg(max_count);

-- name: Head :one
-- Highest position below the gap-free horizon; 0 for an empty log.
SELECT coalesce(max(global_position), 0)::bigint AS head
FROM eventfold.events
WHERE global_position < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 20);

-- name: StreamVersion :one
SELECT version
FROM eventfold.streams
WHERE stream_id = sqlc.arg(stream_id);

-- name: LastPosition :one
-- Highest committed position, ignoring the horizon (monitoring only: a
-- reader must never go past Head).
SELECT coalesce(max(global_position), 0)::bigint AS last_position
FROM eventfold.events;
