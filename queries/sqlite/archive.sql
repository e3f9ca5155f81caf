-- Archive watermark and archive/restore of event ranges (esctl archive,
-- esctl restore). Table: sql/sqlite/00004_archive.sql.

-- name: ArchiveWatermark :one
SELECT archived_before FROM eventfold_archive_watermark WHERE id = 1;

-- name: SetArchiveWatermark :exec
INSERT INTO eventfold_archive_watermark (id, archived_before) VALUES (1, sqlc.arg(archived_before))
ON CONFLICT (id) DO UPDATE
SET archived_before = excluded.archived_before, updated_at = excluded.updated_at;

-- name: SwapArchiveWatermark :execrows
-- Moves the watermark from old_before to new_before only if it is still
-- old_before (0 rows: another archive or restore moved it since it was
-- read). The row lock makes a concurrent swap wait and then see the new
-- value, so of two archive runs that read the same watermark only one
-- moves it.
UPDATE eventfold_archive_watermark
SET archived_before = sqlc.arg(new_before), updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE id = 1 AND archived_before = sqlc.arg(old_before);

-- name: ArchiveFirstPositionRecordedAt :one
-- Lowest position recorded at or after a time (same text layout, so text
-- order is time order); 0 when there is none.
SELECT CAST(coalesce(min(global_position), 0) AS INTEGER) AS global_position
FROM eventfold_events
WHERE recorded_at >= sqlc.arg(recorded_at);

-- name: ArchiveDeleteEventRange :execrows
DELETE FROM eventfold_events
WHERE global_position >= sqlc.arg(from_position)
  AND global_position <= sqlc.arg(through_position);

-- name: ArchiveRestoreEvent :execrows
-- Puts one archived event back exactly as it was; a position already
-- present is skipped (a restore may be re-run). The position floor
-- (migration 00016) is never lowered by this, so positions are not handed
-- out twice.
INSERT INTO eventfold_events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (global_position) DO NOTHING;

-- name: ArchiveRestoreStream :exec
-- Makes sure a restored stream has a row at least at its highest restored
-- version (normally it has: archiving never touches streams).
INSERT INTO eventfold_streams (stream_id, version) VALUES (sqlc.arg(stream_id), sqlc.arg(version))
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, updated_at = excluded.updated_at
WHERE eventfold_streams.version < excluded.version;
