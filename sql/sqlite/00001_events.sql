-- eventfold event store for SQLite (3.35+).
--
-- SQLite has one writer at a time, so rowid order is commit order and a
-- reader continuing from "last position + 1" never skips an event. That is
-- why global_position is the rowid here. AUTOINCREMENT keeps positions from
-- ever being reused, even after archiving removes the newest rows.
--
-- Appending is plain SQL (SQLite has no stored procedures); inside one
-- BEGIN IMMEDIATE transaction:
--   SELECT version FROM eventfold_streams WHERE stream_id = 'account-1';
--   -- check the expected version yourself, then:
--   INSERT INTO eventfold_streams (stream_id, version) VALUES ('account-1', 1)
--     ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at;
--   INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data, metadata)
--     VALUES ('account-1', 1, '0192f0c1-7d3a-7cc1-9a51-1f1f0a7c2b10', 'AccountOpened', '{"owner":"ada"}', '{}');

-- +goose Up
CREATE TABLE eventfold_streams (
    stream_id  TEXT    NOT NULL PRIMARY KEY CHECK (length(CAST(stream_id AS BLOB)) BETWEEN 1 AND 200),
    -- the stream's current version: the stream_version of its last event
    version    INTEGER NOT NULL CHECK (version >= 0),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) WITHOUT ROWID;

CREATE TABLE eventfold_events (
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

-- +goose Down
DROP TABLE eventfold_events;
DROP TABLE eventfold_streams;
