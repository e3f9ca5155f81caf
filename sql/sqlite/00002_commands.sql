-- eventfold 00002: idempotency records for SQLite (package orchestrator).
--
--   eventfold_commands  one row per dispatched command that carried an id
--                       (Envelope.ID): which events it produced, as a JSON
--                       array of {"s": stream id, "v": stream version}.
--
-- The row is inserted in the same transaction as the command's events, so it
-- exists exactly when the events do; a second dispatch of the same id finds it
-- and returns those events without running anything. Times are UTC text,
-- '%Y-%m-%dT%H:%M:%fZ', which compares correctly as text.
--
-- Old rows may be deleted (the orchestrator's ForgetCommands) once clients can
-- no longer retry those requests.
--
--   goose -dir sql/sqlite -table eventfold_goose_version sqlite3 ./app.db up

-- +goose Up

CREATE TABLE eventfold_commands (
    command_id   TEXT NOT NULL PRIMARY KEY CHECK (length(command_id) BETWEEN 1 AND 200),
    command_type TEXT NOT NULL,
    events       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE INDEX eventfold_commands_recorded_at ON eventfold_commands (recorded_at);

-- +goose Down

DROP TABLE IF EXISTS eventfold_commands;
