-- eventfold 00009: commit markers and the store identity for SQL Server 2017+.
--
-- What this creates, inside schema eventfold:
--   eventfold.commit_markers  one row per transaction the orchestrator commits (a
--                             random id written inside the transaction). When the
--                             connection dies after COMMIT was sent, the row tells
--                             afterwards whether that transaction committed: the
--                             orchestrator then answers its callers with the truth
--                             instead of running their commands a second time.
--                             Rows are only needed for seconds; the orchestrator
--                             deletes those older than its retention (default 10
--                             minutes). Deleting them by hand is safe. Marker ids
--                             are time-ordered UUIDs (version 7), so the primary
--                             key alone serves pruning (delete the ids below a
--                             bound) and inserts land at its right-hand edge.
--   eventfold.store_identity  exactly one row: a random id made when this migration
--                             runs. `esctl archive` writes it into every archive
--                             file and `esctl restore` refuses an archive taken from
--                             another store (unless --force).
-- Times are UTC (SYSUTCDATETIME()).
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mssql -table eventfold_goose_version mssql "sqlserver://user:pass@host:1433?database=db" up

-- +goose Up

CREATE TABLE eventfold.commit_markers (
    marker_id   CHAR(36)     COLLATE Latin1_General_100_BIN2 NOT NULL,
    recorded_at DATETIME2(6) NOT NULL CONSTRAINT commit_markers_recorded_at_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT commit_markers_pkey PRIMARY KEY (marker_id)
);

CREATE TABLE eventfold.store_identity (
    id         TINYINT      NOT NULL CONSTRAINT store_identity_id_default DEFAULT 1,
    store_id   CHAR(36)     COLLATE Latin1_General_100_BIN2 NOT NULL
               CONSTRAINT store_identity_store_id_default DEFAULT LOWER(CONVERT(CHAR(36), NEWID())),
    created_at DATETIME2(6) NOT NULL CONSTRAINT store_identity_created_default DEFAULT SYSUTCDATETIME(),
    CONSTRAINT store_identity_pkey PRIMARY KEY (id),
    CONSTRAINT store_identity_single_row CHECK (id = 1)
);

INSERT INTO eventfold.store_identity (id) VALUES (1);

-- +goose Down

DROP TABLE IF EXISTS eventfold.store_identity;
DROP TABLE IF EXISTS eventfold.commit_markers;
