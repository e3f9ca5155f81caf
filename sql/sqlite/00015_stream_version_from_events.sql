-- eventfold 00015: SQLite appends no longer write eventfold_streams.
--
-- A stream's current version is now the highest stream_version among its
-- events (one probe of the UNIQUE (stream_id, stream_version) index), and
-- eventfold_streams only remembers the version of streams whose events
-- were deleted (moved out by `esctl archive`). SQLite has one writer at a
-- time (BEGIN IMMEDIATE), so reading the highest version and inserting
-- above it cannot race; the UNIQUE index refuses a version twice anyway.
-- An append is then a single INSERT, which SQLite applies all or nothing,
-- instead of an upsert of the streams row plus one INSERT per event.
--
-- What this creates:
--   eventfold_events_keep_stream_version  a trigger: before an event row is
--       deleted, its stream's eventfold_streams row is raised to at least the
--       event's version, so a stream whose events are all archived keeps its
--       version (and a later append continues above it). Whoever deletes
--       (esctl archive, an older esctl, a DBA) keeps the rows right.
--
-- Rows written before this migration are exact and stay; rows of streams
-- appended to since may lag behind their events (that is expected).
--
-- Appending by hand, inside one BEGIN IMMEDIATE transaction (the version
-- check is the WHERE clause; no row inserted = the expectation failed):
--   INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data, metadata)
--   SELECT 'account-1', v + 1, '0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10', 'AccountOpened', '{"owner":"ada"}', '{}'
--   FROM (SELECT coalesce((SELECT max(stream_version) FROM eventfold_events WHERE stream_id = 'account-1'),
--                         (SELECT version FROM eventfold_streams WHERE stream_id = 'account-1'), 0) AS v)
--   WHERE v = 0;   -- expected: no stream yet
-- The current version of a stream, the same way:
--   SELECT coalesce((SELECT max(stream_version) FROM eventfold_events WHERE stream_id = 'account-1'),
--                   (SELECT version FROM eventfold_streams WHERE stream_id = 'account-1'), 0);
--
-- Down drops the trigger and brings every eventfold_streams row up to its
-- stream's highest version, which is what code before this migration reads.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./eventfold.db up

-- +goose Up

-- +goose StatementBegin
CREATE TRIGGER eventfold_events_keep_stream_version
BEFORE DELETE ON eventfold_events
BEGIN
    INSERT INTO eventfold_streams (stream_id, version) VALUES (old.stream_id, old.stream_version)
    ON CONFLICT (stream_id) DO UPDATE
    SET version = excluded.version, updated_at = excluded.updated_at
    WHERE eventfold_streams.version < excluded.version;
END;
-- +goose StatementEnd

-- +goose Down

DROP TRIGGER IF EXISTS eventfold_events_keep_stream_version;

INSERT INTO eventfold_streams (stream_id, version)
SELECT stream_id, max(stream_version) FROM eventfold_events WHERE true GROUP BY stream_id
ON CONFLICT (stream_id) DO UPDATE
SET version = excluded.version, updated_at = excluded.updated_at
WHERE eventfold_streams.version < excluded.version;
