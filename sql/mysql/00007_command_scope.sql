-- eventfold 00007: idempotency records are scoped and checked (MySQL 8 / MariaDB 10.6+).
--
-- Before this migration a command id was looked up by the id alone, so any
-- caller who knew (or guessed) another caller's id got that caller's events,
-- and a reused id with another payload silently returned the old result.
-- Now a record belongs to
--   scope         the caller's key space (tenant, user, account: whatever the
--                 orchestrator's Config.Scope / Envelope.Scope says; '' when
--                 the application sets none), UTF-8 bytes. VARBINARY compares
--                 byte for byte on MySQL 8 and MariaDB alike (no PAD SPACE,
--                 no case folding). Two scopes may use the same command id
--                 independently, as payment APIs scope keys to the account.
--   payload_hash  hex SHA-256 of the command's canonical JSON payload; a
--                 reused id with another command name or payload is refused
--                 (orchestrator.ErrIdempotencyKeyReused). '' marks records
--                 written before this migration: their payload is unknown and
--                 only the command name is checked.
--
--   goose -dir sql/mysql -table eventfold_goose_version mysql "$DSN" up

-- +goose Up

ALTER TABLE eventfold_commands
    ADD COLUMN scope        VARBINARY(200) NOT NULL DEFAULT '' COMMENT 'key space of command_id (UTF-8); empty when the application sets none' FIRST,
    ADD COLUMN payload_hash VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '' COMMENT 'hex SHA-256 of the canonical JSON payload; empty before 00007',
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (scope, command_id);

-- +goose Down

-- Two scopes may hold the same command id now; keep the oldest of each so
-- that the old primary key fits again.
DELETE c FROM eventfold_commands c
  JOIN eventfold_commands o
    ON o.command_id = c.command_id
   AND (o.recorded_at < c.recorded_at OR (o.recorded_at = c.recorded_at AND o.scope < c.scope));
ALTER TABLE eventfold_commands
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (command_id),
    DROP COLUMN payload_hash,
    DROP COLUMN scope;
