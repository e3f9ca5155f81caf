-- name: AppendEvents :many
-- The DBA function. The library itself sends the function's statement
-- directly (internal/dialect/postgres/append.go, since 00015); this query
-- stays for comparisons with it. All checks and position assignment happen in the function; see
-- sql/postgres/00001_events.sql and 00006_positions.sql. Data and metadata
-- come back as stored (jsonb normalises them), so the caller gets what
-- readers will read.
SELECT a.global_position::bigint AS global_position,
       a.stream_version::bigint AS stream_version,
       a.recorded_at::timestamptz AS recorded_at,
       a.data::jsonb AS data,
       a.metadata::jsonb AS metadata
FROM eventfold.append_events_returning_data(
    sqlc.arg(stream_id)::text,
    sqlc.arg(expected_version)::bigint,
    sqlc.arg(event_ids)::uuid[],
    sqlc.arg(event_types)::text[],
    sqlc.arg(data)::jsonb[],
    sqlc.arg(metadata)::jsonb[]
) AS a(global_position, stream_version, recorded_at, data, metadata);

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
-- below the snapshot's xmin has finished, and positions are
-- ((xid + offset) << 20) + index (sql/postgres/00006_positions.sql).
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold.events
WHERE global_position >= sqlc.arg(from_position)
  AND global_position < eventfold.horizon()
ORDER BY global_position
LIMIT sqlc.arg(max_count);

-- name: Head :one
-- Highest position below the gap-free horizon; 0 for an empty log.
SELECT coalesce(max(global_position), 0)::bigint AS head
FROM eventfold.events
WHERE global_position < eventfold.horizon();

-- name: StreamVersion :one
-- Since 00015 appends do not write eventfold.streams: the version is the
-- stream's last event's, or for a stream whose events were archived the
-- version its streams row keeps (0: no stream).
SELECT greatest(
           (SELECT max(e.stream_version) FROM eventfold.events e WHERE e.stream_id = sqlc.arg(stream_id)),
           (SELECT s.version FROM eventfold.streams s WHERE s.stream_id = sqlc.arg(stream_id)),
           0)::bigint AS version;

-- name: LastPosition :one
-- Highest committed position, ignoring the horizon (monitoring only: a
-- reader must never go past Head).
SELECT coalesce(max(global_position), 0)::bigint AS last_position
FROM eventfold.events;

-- name: CheckPositions :one
-- Reports, and with repair = true repairs, positions after a move to a new
-- cluster; see sql/postgres/00006_positions.sql.
SELECT c.moved::boolean AS moved, c.repaired::boolean AS repaired,
       c.old_offset::bigint AS old_offset, c.new_offset::bigint AS new_offset,
       c.last_position::bigint AS last_position, c.next_position::bigint AS next_position,
       c.message::text AS message
FROM eventfold.check_positions(sqlc.arg(repair)::boolean) AS c;
