-- eventfold 00002: idempotency records for SQL Server 2017+ (package orchestrator).
--
--   eventfold.commands  one row per dispatched command that carried an id
--                       (Envelope.ID): which events it produced, as a JSON
--                       array of {"s": stream id, "v": stream version}.
--
-- The row is inserted in the same transaction as the command's events, so it
-- exists exactly when the events do. The insert takes UPDLOCK/HOLDLOCK on the
-- key first, so a concurrent duplicate waits for the first to commit, then
-- inserts nothing and the orchestrator retries, finding the row.
-- Times are UTC (SYSUTCDATETIME()).
--
--   goose -dir sql/mssql -table eventfold_goose_version mssql "$DSN" up

-- +goose Up

CREATE TABLE eventfold.commands (
    command_id   NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL,
    command_type NVARCHAR(200) NOT NULL,
    -- [{"s": "<stream id>", "v": <stream version>}, ...] in emitted order.
    events       NVARCHAR(MAX) NOT NULL,
    recorded_at  DATETIME2(6)  NOT NULL CONSTRAINT commands_recorded_at_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT commands_pkey PRIMARY KEY (command_id)
);

CREATE INDEX commands_recorded_at_idx ON eventfold.commands (recorded_at);

-- +goose Down

DROP TABLE IF EXISTS eventfold.commands;
