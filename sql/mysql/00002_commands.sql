-- eventfold 00002: idempotency records for MySQL 8 / MariaDB 10.6+ (package orchestrator).
--
--   eventfold_commands  one row per dispatched command that carried an id
--                       (Envelope.ID): which events it produced, as a JSON
--                       array of {"s": stream id, "v": stream version}.
--
-- The row is inserted in the same transaction as the command's events, so it
-- exists exactly when the events do. A concurrent duplicate waits on the
-- primary key until the first commits, then changes nothing (INSERT ... ON
-- DUPLICATE KEY UPDATE with a no-op, 0 rows affected) and the orchestrator
-- retries, finding the row. Times are UTC (UTC_TIMESTAMP(6)).
--
-- Old rows may be deleted (the orchestrator's ForgetCommands) once clients can
-- no longer retry those requests.
--
--   goose -dir sql/mysql -table eventfold_goose_version mysql "$DSN" up

-- +goose Up

CREATE TABLE eventfold_commands (
    command_id   VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    command_type VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'command name, for people',
    events       LONGTEXT     CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'JSON: [{"s": stream id, "v": stream version}, ...]',
    recorded_at  DATETIME(6)  NOT NULL COMMENT 'UTC',
    PRIMARY KEY (command_id),
    KEY eventfold_commands_recorded_at (recorded_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'Idempotency records of dispatched commands (package orchestrator)';

-- +goose Down

DROP TABLE IF EXISTS eventfold_commands;
