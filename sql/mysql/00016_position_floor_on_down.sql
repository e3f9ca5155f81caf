-- eventfold 00016: a Down below 00015 never hands out a position again, for MySQL 8.0.19+
-- and MariaDB 10.6+.
--
-- Since 00015 positions come from AUTO_INCREMENT and the eventfold_position row is a gate:
-- its last_position keeps the value it had when 00015 ran. 00015's Down restores the
-- counter from the highest event in eventfold_events only, so positions handed out since
-- 00015 and archived away since (esctl archive deletes them below the archive watermark),
-- above every event left, would be handed out again by the counter: two events, one
-- position, for a reader that had delivered the archived one. 00015 is released and is not
-- edited; this migration's Down, which runs just before 00015's, raises the counter above
-- every position handed out:
--   * every event still in the log;
--   * the archive watermark (every position below it may have been archived);
--   * the table's AUTO_INCREMENT (every position allocated, dead ones included; MySQL 8 may
--     show a cached, lower value in information_schema, never a higher one).
-- 00015's Down then keeps that value (it takes the greater of the counter and the log).
--
-- Up changes nothing: the migration only gives the way down its floor. A database taken
-- down to 00015 (and no further) keeps the floor too; appends made at 00015 after that are
-- covered when 00015's own Down runs only as far as they are still in the log.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up

-- +goose Up
DO 0;

-- +goose Down
UPDATE eventfold_position
SET last_position = GREATEST(last_position,
    (SELECT COALESCE(MAX(global_position), 0) FROM eventfold_events),
    (SELECT COALESCE(MAX(archived_before), 1) - 1 FROM eventfold_archive_watermark),
    (SELECT COALESCE(MAX(AUTO_INCREMENT), 1) - 1 FROM information_schema.TABLES
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'eventfold_events'))
WHERE id = 1;
