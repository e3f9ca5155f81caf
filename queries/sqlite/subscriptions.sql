-- name: GetCheckpoint :one
SELECT position FROM eventfold_checkpoints WHERE name = sqlc.arg(name);

-- name: CreateCheckpoint :exec
-- Creates the checkpoint if it does not exist; an existing one is kept.
INSERT OR IGNORE INTO eventfold_checkpoints (name, position) VALUES (sqlc.arg(name), sqlc.arg(position));

-- name: AdvanceCheckpoint :execrows
-- Compare-and-set: moves the checkpoint only if it is still where the caller
-- last saw it, so a process that lost its lease cannot move it.
UPDATE eventfold_checkpoints
SET position = sqlc.arg(position), updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
WHERE name = sqlc.arg(name) AND position = sqlc.arg(expected);

-- name: SetCheckpoint :exec
INSERT INTO eventfold_checkpoints (name, position) VALUES (sqlc.arg(name), sqlc.arg(position))
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now');

-- name: DeleteCheckpoint :exec
DELETE FROM eventfold_checkpoints WHERE name = sqlc.arg(name);

-- name: ListCheckpoints :many
SELECT name, position, updated_at FROM eventfold_checkpoints ORDER BY name;

-- name: AcquireLease :one
-- Takes the lease if it is free or expired, or renews it if the caller holds
-- it; returns the holder afterwards. ttl is a strftime modifier such as
-- '+30.000 seconds'.
INSERT INTO eventfold_leases (name, owner, expires_at)
VALUES (sqlc.arg(name), sqlc.arg(owner), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', sqlc.arg(ttl)))
ON CONFLICT (name) DO UPDATE
SET acquired_at = CASE WHEN eventfold_leases.owner = excluded.owner THEN eventfold_leases.acquired_at ELSE excluded.acquired_at END,
    owner = excluded.owner,
    expires_at = excluded.expires_at
WHERE eventfold_leases.owner = excluded.owner OR eventfold_leases.expires_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
RETURNING owner;

-- name: LeaseOwner :one
SELECT owner FROM eventfold_leases WHERE name = sqlc.arg(name) AND expires_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now');

-- name: ReleaseLease :exec
DELETE FROM eventfold_leases WHERE name = sqlc.arg(name) AND owner = sqlc.arg(owner);
