-- Idempotency records of package orchestrator (sql/sqlite/00002_commands.sql,
-- scoped and checked since 00007_command_scope.sql).

-- name: LookupCommand :one
SELECT command_type, payload_hash, events FROM eventfold_commands
WHERE scope = @scope AND command_id = @command_id;

-- name: RecordCommand :execrows
-- 0 rows: the id is already recorded in this scope.
INSERT INTO eventfold_commands (scope, command_id, command_type, payload_hash, events)
VALUES (@scope, @command_id, @command_type, @payload_hash, @events)
ON CONFLICT (scope, command_id) DO NOTHING;

-- name: PruneCommands :execrows
DELETE FROM eventfold_commands WHERE recorded_at < @before;
