-- eventfold 00004: the archive watermark for SQLite (esctl archive / restore).
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
-- 0 = nothing archived. eventfold_events.global_position is AUTOINCREMENT, so archived
-- positions are never handed out again.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./eventfold.db up

-- +goose Up

CREATE TABLE eventfold_archive_watermark (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    archived_before INTEGER NOT NULL DEFAULT 0 CHECK (archived_before >= 0),
    -- UTC, ISO 8601 with milliseconds
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO eventfold_archive_watermark (id, archived_before) VALUES (1, 0);

-- +goose Down

DROP TABLE IF EXISTS eventfold_archive_watermark;
