-- eventfold 00007: idempotency records are scoped and checked (SQL Server 2017+).
--
-- Before this migration a command id was looked up by the id alone, so any
-- caller who knew (or guessed) another caller's id got that caller's events,
-- and a reused id with another payload silently returned the old result.
-- Now a record belongs to
--   scope         the caller's key space (tenant, user, account: whatever the
--                 orchestrator's Config.Scope / Envelope.Scope says; empty
--                 when the application sets none), as UTF-8 bytes: VARBINARY
--                 compares byte for byte, where (n)varchar '=' ignores
--                 trailing spaces under every collation. Two scopes may use
--                 the same command id independently, as payment APIs scope
--                 keys to the account.
--   payload_hash  hex SHA-256 of the command's canonical JSON payload; a
--                 reused id with another command name or payload is refused
--                 (orchestrator.ErrIdempotencyKeyReused). Empty marks records
--                 written before this migration: their payload is unknown and
--                 only the command name is checked.
--
--   goose -dir sql/mssql -table eventfold_goose_version mssql "$DSN" up

-- +goose Up

ALTER TABLE eventfold.commands ADD
    scope        VARBINARY(200) NOT NULL CONSTRAINT commands_scope_default DEFAULT 0x,
    payload_hash VARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL CONSTRAINT commands_payload_hash_default DEFAULT '';

ALTER TABLE eventfold.commands DROP CONSTRAINT commands_pkey;

ALTER TABLE eventfold.commands ADD CONSTRAINT commands_pkey PRIMARY KEY (scope, command_id);

-- +goose Down

-- Two scopes may hold the same command id now; keep the oldest of each so
-- that the old primary key fits again.
DELETE c FROM eventfold.commands c
 WHERE EXISTS (SELECT 1 FROM eventfold.commands o
                WHERE o.command_id = c.command_id
                  AND (o.recorded_at < c.recorded_at OR (o.recorded_at = c.recorded_at AND o.scope < c.scope)));

ALTER TABLE eventfold.commands DROP CONSTRAINT commands_pkey;

ALTER TABLE eventfold.commands ADD CONSTRAINT commands_pkey PRIMARY KEY (command_id);

ALTER TABLE eventfold.commands DROP CONSTRAINT commands_payload_hash_default, commands_scope_default;

ALTER TABLE eventfold.commands DROP COLUMN payload_hash, scope;
