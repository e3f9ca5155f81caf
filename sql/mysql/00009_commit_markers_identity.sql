-- eventfold 00009: commit markers and the store identity for MySQL 8 / MariaDB.
--
-- What this creates:
--   eventfold_commit_markers  one row per transaction the orchestrator commits (a
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
--   eventfold_store_identity  exactly one row: a random id made when this migration
--                             runs. `esctl archive` writes it into every archive
--                             file and `esctl restore` refuses an archive taken from
--                             another store (unless --force).
-- Times are UTC (UTC_TIMESTAMP(6)).
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up

-- +goose Up

CREATE TABLE eventfold_commit_markers (
    marker_id   CHAR(36)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    recorded_at DATETIME(6) NOT NULL COMMENT 'UTC',
    PRIMARY KEY (marker_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: one row per orchestrator transaction, to resolve a COMMIT whose reply was lost; old rows may be deleted';

CREATE TABLE eventfold_store_identity (
    id         TINYINT     NOT NULL,
    store_id   CHAR(36)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at DATETIME(6) NOT NULL COMMENT 'UTC',
    PRIMARY KEY (id),
    CONSTRAINT eventfold_store_identity_single_row CHECK (id = 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: this event store''s random identity, written into archive files';

INSERT INTO eventfold_store_identity (id, store_id, created_at) VALUES (1, UUID(), UTC_TIMESTAMP(6));

-- +goose Down

DROP TABLE IF EXISTS eventfold_store_identity;
DROP TABLE IF EXISTS eventfold_commit_markers;
