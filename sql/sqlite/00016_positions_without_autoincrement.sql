-- eventfold 00016: SQLite positions without AUTOINCREMENT.
--
-- Until now eventfold_events.global_position was INTEGER PRIMARY KEY
-- AUTOINCREMENT: SQLite read and rewrote the table's row in sqlite_sequence
-- on every insert, one more page written to the WAL per commit (about a
-- seventh of an append's pages) and a few statements' worth of work. This
-- migration rebuilds eventfold_events with a plain INTEGER PRIMARY KEY (the
-- columns, constraints and indexes are the same) and keeps the promise that
-- AUTOINCREMENT kept, positions are never handed out twice, with a floor:
-- the table's row in sqlite_sequence stays, no longer written per insert,
-- as the highest position handed out whose event may have been deleted.
-- The next position is max(max(global_position), that floor) + 1, which is
-- also what AUTOINCREMENT gave before this migration (so appends written
-- this way work on either schema).
--
-- What this creates:
--   eventfold_events_keep_position_floor  a trigger: before the event with
--       the highest position is deleted (archived, or by a DBA), the floor
--       is raised to its position. Deleting other events leaves the highest
--       position in place, so they need nothing (and cost nothing more).
--   eventfold_events_keep_position_floor_on_update  the same before the
--       highest position is changed by an UPDATE.
--   eventfold_events_keep_stream_version  re-created as 00015 made it (a
--       rebuilt table loses its triggers).
--
-- Upgrade every process that writes to the database with this migration:
-- the append of an eventfold older than 00016 gives no position, so SQLite
-- takes max(global_position) + 1 and ignores the floor; once the newest
-- events were archived (esctl archive of the whole log), such an old writer
-- would hand their positions out again, below the subscriptions'
-- checkpoints. (A trigger cannot refuse it: restoring an archive puts
-- events back at positions at or below the floor, on purpose.)
--
-- SQLite has one writer at a time, so rowid order is still commit order and
-- reads stay gap-free. The rebuild copies every event once: on a large
-- store, run it when a pause of that length is acceptable.
--
-- Appending by hand, inside one BEGIN IMMEDIATE transaction: give the
-- position explicitly (without it SQLite takes max(global_position) + 1,
-- which can hand out a position again after the newest events were
-- archived). The version check is the WHERE clause; no row inserted = the
-- expectation failed:
--   INSERT INTO eventfold_events (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
--   SELECT max(coalesce((SELECT max(global_position) FROM eventfold_events), 0),
--              coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'eventfold_events'), 0)) + 1,
--          'account-1', v + 1, '0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10', 'AccountOpened', '{"owner":"ada"}', '{}'
--   FROM (SELECT coalesce((SELECT max(stream_version) FROM eventfold_events WHERE stream_id = 'account-1'),
--                         (SELECT version FROM eventfold_streams WHERE stream_id = 'account-1'), 0) AS v)
--   WHERE v = 0;   -- expected: no stream yet
--
-- Down rebuilds the table with AUTOINCREMENT again, its counter at the
-- floor (or the highest position, if higher).
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./eventfold.db up

-- +goose Up

CREATE TABLE eventfold_rebuilt_events (
    global_position INTEGER PRIMARY KEY,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version >= 1),
    -- a UUID in canonical lower-case text form
    event_id        TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    event_type      TEXT    NOT NULL CHECK (length(CAST(event_type AS BLOB)) BETWEEN 1 AND 200),
    data            TEXT    NOT NULL CHECK (json_valid(data)),
    metadata        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    -- UTC, ISO 8601 with milliseconds
    recorded_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (stream_id, stream_version)
);

INSERT INTO eventfold_rebuilt_events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events ORDER BY global_position;

-- The counter becomes the floor. It is moved aside first: dropping an
-- AUTOINCREMENT table deletes its row.
UPDATE sqlite_sequence SET name = 'eventfold_rebuilt_events' WHERE name = 'eventfold_events';

-- Dropped first so that dropping the table cannot fire it.
DROP TRIGGER IF EXISTS eventfold_events_keep_stream_version;

DROP TABLE eventfold_events;

ALTER TABLE eventfold_rebuilt_events RENAME TO eventfold_events;

UPDATE sqlite_sequence SET name = 'eventfold_events' WHERE name = 'eventfold_rebuilt_events';

INSERT INTO sqlite_sequence (name, seq)
SELECT 'eventfold_events', coalesce((SELECT max(global_position) FROM eventfold_events), 0)
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'eventfold_events');

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

-- +goose StatementBegin
CREATE TRIGGER eventfold_events_keep_position_floor
BEFORE DELETE ON eventfold_events
WHEN old.global_position >= (SELECT max(global_position) FROM eventfold_events)
BEGIN
    UPDATE sqlite_sequence SET seq = old.global_position
    WHERE name = 'eventfold_events' AND seq < old.global_position;
    INSERT INTO sqlite_sequence (name, seq)
    SELECT 'eventfold_events', old.global_position
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'eventfold_events');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER eventfold_events_keep_position_floor_on_update
BEFORE UPDATE OF global_position ON eventfold_events
WHEN old.global_position >= (SELECT max(global_position) FROM eventfold_events)
BEGIN
    UPDATE sqlite_sequence SET seq = old.global_position
    WHERE name = 'eventfold_events' AND seq < old.global_position;
    INSERT INTO sqlite_sequence (name, seq)
    SELECT 'eventfold_events', old.global_position
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'eventfold_events');
END;
-- +goose StatementEnd

-- +goose Down

CREATE TABLE eventfold_rebuilt_events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version >= 1),
    -- a UUID in canonical lower-case text form
    event_id        TEXT    NOT NULL UNIQUE CHECK (length(event_id) = 36),
    event_type      TEXT    NOT NULL CHECK (length(CAST(event_type AS BLOB)) BETWEEN 1 AND 200),
    data            TEXT    NOT NULL CHECK (json_valid(data)),
    metadata        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    -- UTC, ISO 8601 with milliseconds
    recorded_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (stream_id, stream_version)
);

INSERT INTO eventfold_rebuilt_events
    (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
SELECT global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at
FROM eventfold_events ORDER BY global_position;

DROP TRIGGER IF EXISTS eventfold_events_keep_position_floor;
DROP TRIGGER IF EXISTS eventfold_events_keep_position_floor_on_update;
DROP TRIGGER IF EXISTS eventfold_events_keep_stream_version;

DROP TABLE eventfold_events;

-- The new table's counter: at least the floor.
INSERT INTO sqlite_sequence (name, seq)
SELECT 'eventfold_rebuilt_events', 0
WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'eventfold_rebuilt_events');

UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT max(seq) FROM sqlite_sequence WHERE name = 'eventfold_events'), 0))
WHERE name = 'eventfold_rebuilt_events';

DELETE FROM sqlite_sequence WHERE name = 'eventfold_events';

ALTER TABLE eventfold_rebuilt_events RENAME TO eventfold_events;

UPDATE sqlite_sequence SET name = 'eventfold_events' WHERE name = 'eventfold_rebuilt_events';

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
