-- name: GetCheckpoint :one
SELECT position FROM eventfold_checkpoints WHERE name = sqlc.arg(name);

-- name: CreateCheckpoint :exec
-- Creates the checkpoint if it does not exist; an existing one is kept.
INSERT IGNORE INTO eventfold_checkpoints (name, position, updated_at)
VALUES (sqlc.arg(name), sqlc.arg(position), NOW(6));

-- name: AdvanceCheckpoint :execrows
-- Compare-and-set: moves the checkpoint only if it is still where the caller
-- last saw it. The new position always differs from the old one, so the
-- "changed rows" count MySQL reports is the matched count.
UPDATE eventfold_checkpoints
SET position = sqlc.arg(position), updated_at = NOW(6)
WHERE name = sqlc.arg(name) AND position = sqlc.arg(expected);

-- name: SetCheckpoint :exec
INSERT INTO eventfold_checkpoints (name, position, updated_at)
VALUES (sqlc.arg(name), sqlc.arg(position), NOW(6))
ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at);

-- name: DeleteCheckpoint :exec
DELETE FROM eventfold_checkpoints WHERE name = sqlc.arg(name);

-- name: ListCheckpoints :many
SELECT name, position, updated_at FROM eventfold_checkpoints ORDER BY name;

-- name: InsertLease :exec
-- First step of acquiring: create the lease row if there is none.
INSERT IGNORE INTO eventfold_leases (name, owner, expires_at, acquired_at)
VALUES (sqlc.arg(name), sqlc.arg(owner),
        NOW(6) + INTERVAL sqlc.arg(ttl_micros) MICROSECOND, NOW(6));

-- name: TakeLease :exec
-- Second step: take the lease if it is expired, or renew it if held.
UPDATE eventfold_leases
SET acquired_at = IF(owner = sqlc.arg(owner), acquired_at, NOW(6)),
    owner = sqlc.arg(owner),
    expires_at = NOW(6) + INTERVAL sqlc.arg(ttl_micros) MICROSECOND
WHERE name = sqlc.arg(name) AND (owner = sqlc.arg(owner) OR expires_at < NOW(6));

-- name: LeaseOwner :one
SELECT owner FROM eventfold_leases WHERE name = sqlc.arg(name) AND expires_at >= NOW(6);

-- name: ReleaseLease :exec
DELETE FROM eventfold_leases WHERE name = sqlc.arg(name) AND owner = sqlc.arg(owner);
