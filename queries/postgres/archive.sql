-- Archive watermark and archive/restore of event ranges (esctl archive,
-- esctl restore). Table: sql/postgres/00004_archive.sql.

-- name: ArchiveWatermark :one
SELECT archived_before FROM eventfold.archive_watermark WHERE id = 1;

-- name: SetArchiveWatermark :exec
INSERT INTO eventfold.archive_watermark (id, archived_before, updated_at)
VALUES (1, sqlc.arg(archived_before), now())
ON CONFLICT (id) DO UPDATE
SET archived_before = excluded.archived_before, updated_at = excluded.updated_at;

-- name: SwapArchiveWatermark :execrows
-- Moves the watermark from old_before to new_before only if it is still
-- old_before (0 rows: another archive or restore moved it since it was
-- read). The row lock makes a concurrent swap wait and then see the new
-- value, so of two archive runs that read the same watermark only one
-- moves it.
UPDATE eventfold.archive_watermark
SET archived_before = sqlc.arg(new_before), updated_at = now()
WHERE id = 1 AND archived_before = sqlc.arg(old_before);

-- name: ArchiveFirstPositionRecordedAt :one
-- Lowest position recorded at or after a time; 0 when there is none.
SELECT coalesce(min(global_position), 0)::bigint AS global_position
FROM eventfold.events
WHERE recorded_at >= sqlc.arg(recorded_at);

-- name: ArchiveDeleteEventRange :one
-- Deletes the range and, in the same statement, keeps each stream's
-- version in eventfold.streams: since 00015 appends take a stream's
-- version from its last event, falling back to that row when the stream
-- has no events left in the hot table.
WITH d AS (
    DELETE FROM eventfold.events
    WHERE global_position >= sqlc.arg(from_position)
      AND global_position <= sqlc.arg(through_position)
    RETURNING stream_id, stream_version
), kept AS (
    INSERT INTO eventfold.streams AS s (stream_id, version, updated_at)
    SELECT d.stream_id, max(d.stream_version), now()
    FROM d
    GROUP BY d.stream_id
    ON CONFLICT (stream_id) DO UPDATE
    SET version = excluded.version, updated_at = excluded.updated_at
    WHERE s.version < excluded.version
)
SELECT count(*)::bigint AS deleted FROM d;

-- name: ArchiveRestoreEvents :execrows
-- Puts archived events back exactly as they were, from a JSON array of
-- events as esctl prints them; positions already present are skipped (a
-- restore may be re-run). A different event with the same id at another
-- position still fails on events_event_id_key.
INSERT INTO eventfold.events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
SELECT r.global_position, r.stream_id, r.stream_version, r.id, r.type,
       coalesce(r.data, 'null'::jsonb), coalesce(r.metadata, '{}'::jsonb), r.recorded_at
FROM jsonb_to_recordset((sqlc.arg(events)::text)::jsonb) AS r(
    global_position bigint, stream_id text, stream_version bigint, id uuid,
    type text, data jsonb, metadata jsonb, recorded_at timestamptz)
ORDER BY r.global_position
ON CONFLICT (global_position) DO NOTHING;

-- name: ArchiveRestoreStreams :exec
-- Makes sure every restored stream has a row at least at its highest
-- restored version (normally it has: archiving writes it).
INSERT INTO eventfold.streams AS s (stream_id, version, updated_at)
SELECT r.stream_id, max(r.stream_version), now()
FROM jsonb_to_recordset((sqlc.arg(events)::text)::jsonb) AS r(stream_id text, stream_version bigint)
GROUP BY r.stream_id
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, updated_at = excluded.updated_at
WHERE s.version < excluded.version;
