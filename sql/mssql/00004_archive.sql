-- eventfold 00004: the archive watermark for SQL Server (esctl archive / restore).
--
-- What this creates, inside schema eventfold:
--   eventfold.archive_watermark  exactly one row: archived_before, the first global
--                                position still in the hot table. Every event below
--                                it was moved out to an archive file by
--                                `esctl archive`; reads that reach below it fail with
--                                "archived" (eventfold.ErrArchived) instead of
--                                silently returning nothing.
--
-- The watermark is raised BEFORE archived rows are deleted (after the archive file has
-- been written and verified) and lowered by `esctl restore` AFTER the rows are back.
-- 0 = nothing archived.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mssql -table eventfold_goose_version mssql "sqlserver://user:pass@host:1433?database=db" up

-- +goose Up

CREATE TABLE eventfold.archive_watermark (
    id              TINYINT      NOT NULL CONSTRAINT archive_watermark_id_default DEFAULT 1,
    archived_before BIGINT       NOT NULL CONSTRAINT archive_watermark_before_default DEFAULT 0,
    updated_at      DATETIME2(6) NOT NULL CONSTRAINT archive_watermark_updated_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT archive_watermark_pkey PRIMARY KEY (id),
    CONSTRAINT archive_watermark_single_row CHECK (id = 1),
    CONSTRAINT archive_watermark_nonnegative CHECK (archived_before >= 0)
);

INSERT INTO eventfold.archive_watermark (id, archived_before) VALUES (1, 0);

-- +goose Down

DROP TABLE IF EXISTS eventfold.archive_watermark;
