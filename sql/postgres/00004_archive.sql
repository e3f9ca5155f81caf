-- eventfold 00004: the archive watermark for PostgreSQL (esctl archive / restore).
--
-- What this creates, inside schema "eventfold":
--   eventfold.archive_watermark  exactly one row: archived_before, the first global
--                                position still in the hot table. Every event below
--                                it was moved out to an archive file by
--                                `esctl archive`; reads that reach below it fail with
--                                "archived" (eventfold.ErrArchived) instead of
--                                silently returning nothing.
--
-- The watermark is raised BEFORE archived rows are deleted (after the archive file has
-- been written and verified) and lowered by `esctl restore` AFTER the rows are back,
-- so a reader never mistakes a half-archived range for an empty one. 0 = nothing
-- archived. Do not edit it by hand unless you have moved events yourself.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

CREATE TABLE eventfold.archive_watermark (
    id              smallint    NOT NULL DEFAULT 1,
    archived_before bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT archive_watermark_pkey PRIMARY KEY (id),
    CONSTRAINT archive_watermark_single_row CHECK (id = 1),
    CONSTRAINT archive_watermark_nonnegative CHECK (archived_before >= 0)
);

COMMENT ON TABLE eventfold.archive_watermark IS 'One row: every event with global_position < archived_before was moved to an archive file (esctl archive); 0 = none.';

INSERT INTO eventfold.archive_watermark (id, archived_before) VALUES (1, 0);

-- +goose Down

DROP TABLE IF EXISTS eventfold.archive_watermark;
