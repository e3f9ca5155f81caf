-- Idempotency records of package orchestrator (sql/sqlite/00002_commands.sql).

-- name: LookupCommand :one
SELECT events FROM eventfold_commands WHERE command_id = @command_id;

-- name: RecordCommand :execrows
-- 0 rows: the id is already recorded.
INSERT INTO eventfold_commands (command_id, command_type, events)
VALUES (@command_id, @command_type, @events)
ON CONFLICT (command_id) DO NOTHING;

-- name: PruneCommands :execrows
DELETE FROM eventfold_commands WHERE recorded_at < @before;
