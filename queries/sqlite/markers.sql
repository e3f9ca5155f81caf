-- The store identity (sql/sqlite/00009_commit_markers_identity.sql).

-- name: StoreIdentity :one
SELECT store_id FROM eventfold_store_identity WHERE id = 1;
