-- Idempotency records of package orchestrator (sql/postgres/00002_commands.sql,
-- scoped and checked since 00007_command_scope.sql).

-- name: LookupCommand :one
SELECT command_type, payload_hash, events FROM eventfold.commands
WHERE scope = @scope AND command_id = @command_id;

-- name: RecordCommand :execrows
-- 0 rows: the id is already recorded in this scope (a concurrent duplicate
-- committed first; ON CONFLICT waits for it, so this is never a false negative).
INSERT INTO eventfold.commands (scope, command_id, command_type, payload_hash, events)
VALUES (@scope, @command_id, @command_type, @payload_hash, (@events::text)::jsonb)
ON CONFLICT (scope, command_id) DO NOTHING;

-- name: PruneCommands :execrows
DELETE FROM eventfold.commands WHERE recorded_at < @before;

-- name: RecordCommandStrict :exec
-- RecordCommand for a write queued with COMMIT: a conflict (a concurrent
-- duplicate that committed first; the insert waits for it) is an error,
-- commands_pkey's unique violation, so that the pipelined COMMIT does not
-- commit. ON CONFLICT DO NOTHING would leave the transaction usable.
INSERT INTO eventfold.commands (scope, command_id, command_type, payload_hash, events)
VALUES (@scope, @command_id, @command_type, @payload_hash, (@events::text)::jsonb);
