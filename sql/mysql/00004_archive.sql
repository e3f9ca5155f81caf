-- eventfold 00004: the archive watermark for MySQL 8 / MariaDB (esctl archive / restore).
--
-- What this creates:
--   eventfold_archive_watermark  exactly one row: archived_before, the first global
--                                position still in the hot table. Every event below
--                                it was moved out to an archive file by
--                                `esctl archive`; reads that reach below it fail with
--                                "archived" (eventfold.ErrArchived) instead of
--                                silently returning nothing.
--
-- The watermark is raised BEFORE archived rows are deleted (after the archive file has
-- been written and verified) and lowered by `esctl restore` AFTER the rows are back.
-- 0 = nothing archived. eventfold_position.last_position never goes back, so archived
-- positions are never handed out again.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up

-- +goose Up

CREATE TABLE eventfold_archive_watermark (
    id              TINYINT     NOT NULL,
    archived_before BIGINT      NOT NULL DEFAULT 0,
    updated_at      DATETIME(6) NOT NULL COMMENT 'UTC',
    PRIMARY KEY (id),
    CONSTRAINT eventfold_archive_watermark_single_row CHECK (id = 1),
    CONSTRAINT eventfold_archive_watermark_nonnegative CHECK (archived_before >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: events below archived_before were moved to an archive file (esctl archive)';

INSERT INTO eventfold_archive_watermark (id, archived_before, updated_at) VALUES (1, 0, UTC_TIMESTAMP(6));

-- +goose Down

DROP TABLE IF EXISTS eventfold_archive_watermark;
