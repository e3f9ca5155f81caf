-- sqlc's copy of the ALTER TABLE statements of sql/mysql/00005_exact_identifiers_atomic_append.sql
-- (sqlc cannot parse that migration's stored procedure). Kept verbatim by
-- TestSqlcSchemaMatchesMigration in internal/dialect/mysql; do not edit by hand.

ALTER TABLE eventfold_streams
    MODIFY stream_id VARBINARY(800) NOT NULL;

ALTER TABLE eventfold_events
    MODIFY stream_id  VARBINARY(800) NOT NULL,
    MODIFY event_id   VARBINARY(36)  NOT NULL COMMENT 'UUID, canonical lower-case text',
    MODIFY event_type VARBINARY(800) NOT NULL;

ALTER TABLE eventfold_commands
    MODIFY command_id   VARBINARY(800) NOT NULL,
    MODIFY command_type VARBINARY(800) NOT NULL COMMENT 'command name, for people';

ALTER TABLE eventfold_checkpoints
    MODIFY name VARBINARY(800) NOT NULL;

ALTER TABLE eventfold_leases
    MODIFY name  VARBINARY(800) NOT NULL,
    MODIFY owner VARBINARY(800) NOT NULL;
