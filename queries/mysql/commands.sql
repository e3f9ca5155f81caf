-- Idempotency records of package orchestrator (sql/mysql/00002_commands.sql,
-- scoped and checked since 00007_command_scope.sql).

-- name: LookupCommand :one
SELECT command_type, payload_hash, events FROM eventfold_commands
WHERE scope = ? AND command_id = ?;

-- name: RecordCommand :execrows
-- recorded_at is the application's UTC clock: sqlc cannot parse UTC_TIMESTAMP(6).
-- 0 rows affected: the id is already recorded in this scope (the no-op update
-- changes nothing; the insert waited on the key for a concurrent duplicate).
INSERT INTO eventfold_commands (scope, command_id, command_type, payload_hash, events, recorded_at)
VALUES (?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE command_id = command_id;

-- name: PruneCommands :execrows
DELETE FROM eventfold_commands WHERE recorded_at < ?;
