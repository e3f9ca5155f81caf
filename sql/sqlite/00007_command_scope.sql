-- eventfold 00007: idempotency records are scoped and checked (SQLite).
--
-- Before this migration a command id was looked up by the id alone, so any
-- caller who knew (or guessed) another caller's id got that caller's events,
-- and a reused id with another payload silently returned the old result.
-- Now a record belongs to
--   scope         the caller's key space (tenant, user, account: whatever the
--                 orchestrator's Config.Scope / Envelope.Scope says; '' when
--                 the application sets none). Two scopes may use the same
--                 command id independently, as payment APIs scope keys to the
--                 account.
--   payload_hash  hex SHA-256 of the command's canonical JSON payload; a
--                 reused id with another command name or payload is refused
--                 (orchestrator.ErrIdempotencyKeyReused). '' marks records
--                 written before this migration: their payload is unknown and
--                 only the command name is checked.
--
-- SQLite cannot change a primary key in place: the table is rebuilt.
--
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./app.db up

-- +goose Up

CREATE TABLE eventfold_commands_00007 (
    scope        TEXT NOT NULL DEFAULT '' CHECK (length(CAST(scope AS BLOB)) <= 200),
    command_id   TEXT NOT NULL CHECK (length(command_id) BETWEEN 1 AND 200),
    command_type TEXT NOT NULL,
    payload_hash TEXT NOT NULL DEFAULT '',
    events       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (scope, command_id)
);

INSERT INTO eventfold_commands_00007 (scope, command_id, command_type, payload_hash, events, recorded_at)
SELECT '', command_id, command_type, '', events, recorded_at FROM eventfold_commands;

DROP TABLE eventfold_commands;
ALTER TABLE eventfold_commands_00007 RENAME TO eventfold_commands;
CREATE INDEX eventfold_commands_recorded_at ON eventfold_commands (recorded_at);

-- +goose Down

CREATE TABLE eventfold_commands_00002 (
    command_id   TEXT NOT NULL PRIMARY KEY CHECK (length(command_id) BETWEEN 1 AND 200),
    command_type TEXT NOT NULL,
    events       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Two scopes may hold the same command id now; keep the oldest of each.
INSERT INTO eventfold_commands_00002 (command_id, command_type, events, recorded_at)
SELECT command_id, command_type, events, recorded_at FROM eventfold_commands c
 WHERE NOT EXISTS (SELECT 1 FROM eventfold_commands o
                    WHERE o.command_id = c.command_id
                      AND (o.recorded_at < c.recorded_at OR (o.recorded_at = c.recorded_at AND o.scope < c.scope)));

DROP TABLE eventfold_commands;
ALTER TABLE eventfold_commands_00002 RENAME TO eventfold_commands;
CREATE INDEX eventfold_commands_recorded_at ON eventfold_commands (recorded_at);
