-- Archive watermark and archive/restore of event ranges (esctl archive,
-- esctl restore). Table: sql/mysql/00004_archive.sql.

-- name: ArchiveWatermark :one
SELECT archived_before FROM eventfold_archive_watermark WHERE id = 1;

-- name: SetArchiveWatermark :exec
INSERT INTO eventfold_archive_watermark (id, archived_before, updated_at)
VALUES (1, sqlc.arg(archived_before), sqlc.arg(updated_at))
ON DUPLICATE KEY UPDATE archived_before = VALUES(archived_before), updated_at = VALUES(updated_at);

-- name: SwapArchiveWatermark :execrows
-- Moves the watermark from old_before to new_before only if it is still
-- old_before (0 rows: another archive or restore moved it since it was
-- read). The row lock makes a concurrent swap wait and then see the new
-- value, so of two archive runs that read the same watermark only one
-- moves it.
UPDATE eventfold_archive_watermark
SET archived_before = sqlc.arg(new_before), updated_at = sqlc.arg(updated_at)
WHERE id = 1 AND archived_before = sqlc.arg(old_before);

-- name: ArchiveFirstPositionRecordedAt :one
-- Lowest position recorded at or after a time; 0 when there is none.
SELECT CAST(COALESCE(MIN(global_position), 0) AS SIGNED) AS global_position
FROM eventfold_events
WHERE recorded_at >= sqlc.arg(recorded_at);

-- name: ArchiveDeleteEventRange :execrows
DELETE FROM eventfold_events
WHERE global_position >= sqlc.arg(from_position)
  AND global_position <= sqlc.arg(through_position);

-- name: ArchiveRestoreEvent :execrows
-- Puts one archived event back exactly as it was; a position already
-- present is left alone (a restore may be re-run): the no-op update makes
-- the duplicate harmless, and esctl reads every batch back to make sure
-- each position holds the archived event.
INSERT INTO eventfold_events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE global_position = global_position;

-- name: ArchiveRestoreStream :exec
-- Makes sure a restored stream has a row at least at its highest restored
-- version (normally it has: archiving never touches streams). VALUES() is
-- spelled so that MySQL 8 and MariaDB both accept it.
INSERT INTO eventfold_streams (stream_id, version, updated_at)
VALUES (sqlc.arg(stream_id), sqlc.arg(version), sqlc.arg(updated_at))
ON DUPLICATE KEY UPDATE version = GREATEST(version, VALUES(version));

-- name: ArchiveRaisePositionCounter :exec
-- The counter must stay at or above every position in the table, so that
-- an append never hands out a restored position again.
UPDATE eventfold_position SET last_position = GREATEST(last_position, sqlc.arg(position)) WHERE id = 1;
