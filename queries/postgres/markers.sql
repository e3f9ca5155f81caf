-- Commit markers of package orchestrator and the store identity
-- (sql/postgres/00009_commit_markers_identity.sql).

-- name: WriteCommitMarker :exec
INSERT INTO eventfold.commit_markers (marker_id) VALUES (@marker_id);

-- name: ClaimCommitMarker :execrows
-- Run outside the marked transaction. 0 rows: the marker was already there,
-- so its transaction committed. ON CONFLICT waits for a transaction that
-- still holds the key, so an in-flight COMMIT is never mistaken for a lost
-- one; once this row is in, the marked transaction can no longer commit.
INSERT INTO eventfold.commit_markers (marker_id) VALUES (@marker_id)
ON CONFLICT (marker_id) DO NOTHING;

-- name: PruneCommitMarkers :execrows
-- Marker ids are UUIDv7: below the bound means made before its time.
DELETE FROM eventfold.commit_markers WHERE marker_id < @bound;

-- name: StoreIdentity :one
SELECT store_id FROM eventfold.store_identity WHERE id = 1;
