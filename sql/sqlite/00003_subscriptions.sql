-- eventfold 00003: durable subscriptions for SQLite (package listener).
--
--   eventfold_checkpoints  one row per named subscription: the global position
--                          of the last event it has handled.
--   eventfold_leases       one row per named subscription: which process drives
--                          it and until when (renewed by its holder), so that
--                          two processes sharing the database file never both
--                          run it.
--
-- Times are UTC text, '%Y-%m-%dT%H:%M:%fZ' (millisecond precision), from the
-- database clock; that format compares correctly as text.
--
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./app.db up

-- +goose Up

CREATE TABLE eventfold_checkpoints (
    name       TEXT    NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    -- Global position of the last event handled; 0 = none.
    position   INTEGER NOT NULL CHECK (position >= 0),
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE eventfold_leases (
    name        TEXT NOT NULL PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    owner       TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    acquired_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- +goose Down

DROP TABLE IF EXISTS eventfold_leases;
DROP TABLE IF EXISTS eventfold_checkpoints;
