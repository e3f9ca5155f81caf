-- name: GetCheckpoint :one
SELECT position FROM eventfold.checkpoints WHERE name = sqlc.arg(name);

-- name: CreateCheckpoint :exec
-- Creates the checkpoint if it does not exist; an existing one is kept.
INSERT INTO eventfold.checkpoints (name, position) VALUES (sqlc.arg(name), sqlc.arg(position))
ON CONFLICT (name) DO NOTHING;

-- name: AdvanceCheckpoint :execrows
-- Compare-and-set: moves the checkpoint only if it is still where the
-- caller last saw it, so a process that lost its lease cannot move it.
UPDATE eventfold.checkpoints
SET position = sqlc.arg(position), updated_at = clock_timestamp()
WHERE name = sqlc.arg(name) AND position = sqlc.arg(expected);

-- name: SetCheckpoint :exec
INSERT INTO eventfold.checkpoints (name, position) VALUES (sqlc.arg(name), sqlc.arg(position))
ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = clock_timestamp();

-- name: DeleteCheckpoint :exec
DELETE FROM eventfold.checkpoints WHERE name = sqlc.arg(name);

-- name: ListCheckpoints :many
SELECT name, position, updated_at FROM eventfold.checkpoints ORDER BY name;

-- name: AcquireLease :one
-- Takes the lease if it is free or expired, or renews it if the caller holds
-- it; returns the holder afterwards (the caller holds it iff that is itself).
INSERT INTO eventfold.leases AS l (name, owner, expires_at, acquired_at)
VALUES (sqlc.arg(name), sqlc.arg(owner),
        clock_timestamp() + make_interval(secs => sqlc.arg(ttl_seconds)::float8), clock_timestamp())
ON CONFLICT (name) DO UPDATE
SET owner = excluded.owner,
    expires_at = excluded.expires_at,
    acquired_at = CASE WHEN l.owner = excluded.owner THEN l.acquired_at ELSE excluded.acquired_at END
WHERE l.owner = excluded.owner OR l.expires_at < clock_timestamp()
RETURNING owner;

-- name: LeaseOwner :one
SELECT owner FROM eventfold.leases WHERE name = sqlc.arg(name) AND expires_at >= clock_timestamp();

-- name: ReleaseLease :exec
DELETE FROM eventfold.leases WHERE name = sqlc.arg(name) AND owner = sqlc.arg(owner);
