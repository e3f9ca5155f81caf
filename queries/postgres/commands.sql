-- Idempotency records of package orchestrator (sql/postgres/00002_commands.sql).

-- name: LookupCommand :one
SELECT events FROM eventfold.commands WHERE command_id = @command_id;

-- name: RecordCommand :execrows
-- 0 rows: the id is already recorded (a concurrent duplicate committed first;
-- ON CONFLICT waits for it, so this is never a false negative).
INSERT INTO eventfold.commands (command_id, command_type, events)
VALUES (@command_id, @command_type, @events)
ON CONFLICT (command_id) DO NOTHING;

-- name: PruneCommands :execrows
DELETE FROM eventfold.commands WHERE recorded_at < @before;
