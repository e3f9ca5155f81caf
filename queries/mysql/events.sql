-- Reads of the eventfold event log on MySQL/MariaDB (sqlc, engine mysql).
--
-- Appends are not here: they go through the stored procedure eventfold_append_events
-- (sql/mysql/00001_events.sql), whose result set sqlc cannot describe (it does not model
-- CALL or procedure results), so internal/dialect/mysql calls it by hand.
--
-- ReadAll on MySQL/MariaDB: positions come from AUTO_INCREMENT since migration 00015, so they
-- commit out of order and rolled-back ones stay dead. internal/dialect/mysql reads with ReadAll
-- and, at the first hole, fills it with ReadAllGap, a locking read of the latest committed rows;
-- a position still missing then is waited for through the gate row (see read.go).

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

-- name: ReadAllGap :many
-- The rows in [from, before) as last committed, where "before" is a position the plain read
-- already saw committed. This locking read reads the latest committed rows, not a snapshot, and
-- waits on an uncommitted one; a position it does not return may still be allocated by a running
-- append whose row is not in the index yet, which the caller settles with the gate (read.go). It
-- never locks the open end of the log: the range stops below a committed row.
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events
WHERE global_position >= sqlc.arg(from_position) AND global_position < sqlc.arg(before_position)
ORDER BY global_position
LIMIT ?
LOCK IN SHARE MODE;

-- name: Head :one
-- The highest committed position (0 for an empty log).
SELECT CAST(COALESCE(MAX(global_position), 0) AS SIGNED) AS head
FROM eventfold_events;

-- name: StreamVersion :one
-- A stream's version (0: no stream).
SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) AS version
FROM eventfold_streams
WHERE stream_id = sqlc.arg(stream_id);
