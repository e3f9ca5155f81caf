-- Reads of the eventfold event log on MySQL/MariaDB (sqlc, engine mysql).
--
-- Appends are not here: they go through the stored procedure eventfold_append_events
-- (sql/mysql/00001_events.sql), whose result set sqlc cannot describe (it does not model
-- CALL or procedure results), so internal/dialect/mysql calls it by hand.
--
-- ReadAll needs no horizon filter on MySQL: positions are handed out under the
-- eventfold_position row lock, held to commit, so they become visible strictly in order and a
-- plain "global_position >= from" read never passes over an event that commits later.

-- name: ReadStreamForward :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE stream_id = sqlc.arg(stream_id) AND stream_version >= sqlc.arg(from_version)
ORDER BY stream_version
LIMIT ?;

-- name: ReadStreamBackward :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE stream_id = sqlc.arg(stream_id) AND stream_version <= sqlc.arg(from_version)
ORDER BY stream_version DESC
LIMIT ?;

-- name: ReadAll :many
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE global_position >= sqlc.arg(from_position)
ORDER BY global_position
LIMIT ?;

-- name: Head :one
-- The highest committed position (0 for an empty log).
SELECT CAST(COALESCE(MAX(global_position), 0) AS SIGNED) AS head
FROM eventfold_events;

-- name: StreamVersion :one
-- A stream's version (0: no stream).
SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) AS version
FROM eventfold_streams
WHERE stream_id = sqlc.arg(stream_id);
