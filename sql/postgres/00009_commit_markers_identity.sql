-- eventfold 00009: commit markers and the store identity for PostgreSQL.
--
-- What this creates, inside schema "eventfold":
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
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

CREATE TABLE eventfold.commit_markers (
    marker_id   uuid        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT commit_markers_pkey PRIMARY KEY (marker_id)
);

COMMENT ON TABLE eventfold.commit_markers IS 'One row per orchestrator transaction, to resolve a COMMIT whose reply was lost. Rows older than a few minutes may be deleted.';

CREATE TABLE eventfold.store_identity (
    id         smallint    NOT NULL DEFAULT 1,
    store_id   text        COLLATE "C" NOT NULL DEFAULT gen_random_uuid()::text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT store_identity_pkey PRIMARY KEY (id),
    CONSTRAINT store_identity_single_row CHECK (id = 1)
);

COMMENT ON TABLE eventfold.store_identity IS 'One row: this event store''s random identity, written into archive files; restore refuses archives of other stores.';

INSERT INTO eventfold.store_identity (id) VALUES (1);

-- +goose Down

DROP TABLE IF EXISTS eventfold.store_identity;
DROP TABLE IF EXISTS eventfold.commit_markers;
