-- eventfold 00009: the store identity for SQLite.
--
-- What this creates:
--   eventfold_store_identity  exactly one row: a random id made when this migration
--                             runs. `esctl archive` writes it into every archive
--                             file and `esctl restore` refuses an archive taken from
--                             another store (unless --force).
--
-- The other dialects' 00009 also creates a commit-marker table, which resolves a
-- COMMIT whose reply a network connection lost. SQLite runs inside the process:
-- there is no connection to lose, and a failed COMMIT is reported by the engine
-- itself with a known outcome (not committed), so SQLite needs no markers.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./eventfold.db up

-- +goose Up

CREATE TABLE eventfold_store_identity (
    id         INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    -- a random version-4 UUID
    store_id   TEXT    NOT NULL,
    -- UTC, ISO 8601 with milliseconds
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

INSERT INTO eventfold_store_identity (id, store_id)
SELECT 1, substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-' ||
          substr('89ab', 1 + (abs(random()) % 4), 1) || substr(h, 18, 3) || '-' || substr(h, 21, 12)
FROM (SELECT lower(hex(randomblob(16))) AS h);

-- +goose Down

DROP TABLE IF EXISTS eventfold_store_identity;
