-- The SQLite store's own queries (sqlc input).

-- name: StreamVersion :one
-- A stream's version is the highest version among its events; when
-- archiving moved every one of them out, the eventfold_streams row that
-- migration 00015's trigger keeps (0: no stream). Appends do not write
-- eventfold_streams (internal/dialect/sqlite/append.go).
SELECT CAST(coalesce(
    (SELECT max(stream_version) FROM eventfold_events WHERE eventfold_events.stream_id = sqlc.arg(stream_id)),
    (SELECT version FROM eventfold_streams WHERE eventfold_streams.stream_id = sqlc.arg(stream_id)),
    0) AS INTEGER) AS version;

-- name: ReadStreamForward :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE stream_id = sqlc.arg(stream_id) AND stream_version >= sqlc.arg(from_version)
ORDER BY stream_version
LIMIT sqlc.arg(max_count);

-- name: ReadStreamBackward :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE stream_id = sqlc.arg(stream_id) AND stream_version <= sqlc.arg(from_version)
ORDER BY stream_version DESC
LIMIT sqlc.arg(max_count);

-- name: ReadAll :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE global_position >= sqlc.arg(from_position)
ORDER BY global_position
LIMIT sqlc.arg(max_count);

-- name: Head :one
SELECT CAST(coalesce(max(global_position), 0) AS INTEGER) FROM eventfold_events;
