-- Commit markers of package orchestrator and the store identity
-- (sql/mysql/00009_commit_markers_identity.sql).

-- name: WriteCommitMarker :exec
-- recorded_at is the application's UTC clock: sqlc cannot parse UTC_TIMESTAMP(6).
INSERT INTO eventfold_commit_markers (marker_id, recorded_at) VALUES (?, ?);

-- name: ClaimCommitMarker :execrows
-- Run outside the marked transaction. 0 rows affected: the marker was already
-- there (the no-op update changes nothing), so its transaction committed. The
-- insert waits on the key of a transaction that still holds it, so an
-- in-flight COMMIT is never mistaken for a lost one.
INSERT INTO eventfold_commit_markers (marker_id, recorded_at) VALUES (?, ?)
ON DUPLICATE KEY UPDATE marker_id = marker_id;

-- name: PruneCommitMarkers :execrows
-- Marker ids are UUIDv7 text: below the bound means made before its time.
DELETE FROM eventfold_commit_markers WHERE marker_id < ?;

-- name: StoreIdentity :one
SELECT store_id FROM eventfold_store_identity WHERE id = 1;
