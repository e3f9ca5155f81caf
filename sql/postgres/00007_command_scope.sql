-- eventfold 00007: idempotency records are scoped and checked (PostgreSQL).
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
-- Rows recorded before this migration keep scope ''.
--
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

ALTER TABLE eventfold.commands
    ADD COLUMN scope        text COLLATE "C" NOT NULL DEFAULT '',
    ADD COLUMN payload_hash text             NOT NULL DEFAULT '',
    ADD CONSTRAINT commands_scope_length CHECK (octet_length(scope) <= 200);

ALTER TABLE eventfold.commands DROP CONSTRAINT commands_pkey;
ALTER TABLE eventfold.commands ADD CONSTRAINT commands_pkey PRIMARY KEY (scope, command_id);

COMMENT ON COLUMN eventfold.commands.scope IS 'Key space of command_id (tenant, user ...); '''' when the application sets none.';
COMMENT ON COLUMN eventfold.commands.payload_hash IS 'Hex SHA-256 of the canonical JSON payload; '''' for records made before migration 00007.';

-- +goose Down

-- Two scopes may hold the same command id now; keep one of each (the
-- oldest) so that the old primary key fits again.
DELETE FROM eventfold.commands c
 WHERE EXISTS (SELECT 1 FROM eventfold.commands o
                WHERE o.command_id = c.command_id
                  AND (o.recorded_at, o.scope) < (c.recorded_at, c.scope));
ALTER TABLE eventfold.commands DROP CONSTRAINT commands_pkey;
ALTER TABLE eventfold.commands ADD CONSTRAINT commands_pkey PRIMARY KEY (command_id);
ALTER TABLE eventfold.commands
    DROP CONSTRAINT commands_scope_length,
    DROP COLUMN payload_hash,
    DROP COLUMN scope;
