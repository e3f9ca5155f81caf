-- The SQLite store's own queries (sqlc input).

-- name: StreamVersion :one
SELECT version FROM eventfold_streams WHERE stream_id = ?;

-- name: AdvanceStream :one
-- Creates the stream or adds to its version; returns the new version.
INSERT INTO eventfold_streams (stream_id, version) VALUES (?, ?)
ON CONFLICT (stream_id) DO UPDATE
   SET version = version + excluded.version, updated_at = excluded.updated_at
RETURNING version;

-- name: InsertEvent :one
INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data, metadata)
VALUES (?, ?, ?, ?, ?, ?)
RETURNING global_position, recorded_at;

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
