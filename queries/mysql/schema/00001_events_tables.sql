-- sqlc's view of sql/mysql/00001_events.sql: the same CREATE TABLE statements, without the
-- stored procedure, which sqlc's MySQL parser cannot read (it stops at the routine's
-- characteristics and does not know SIGNAL or JSON_TABLE). This file is never applied to a
-- database; the migration is the truth. internal/dialect/mysql's TestSqlcSchemaMatchesMigration
-- fails when the two drift apart, so edit both together.

CREATE TABLE eventfold_streams (
    stream_id  VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    version    BIGINT      NOT NULL,
    updated_at DATETIME(6) NOT NULL COMMENT 'UTC',
    PRIMARY KEY (stream_id),
    CONSTRAINT eventfold_streams_version_nonnegative CHECK (version >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: one row per stream, locked by every append to it';

CREATE TABLE eventfold_events (
    global_position BIGINT       NOT NULL,
    stream_id       VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    stream_version  BIGINT       NOT NULL,
    event_id        CHAR(36)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL COMMENT 'UUID, canonical lower-case text',
    event_type      VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    data            JSON         NOT NULL,
    metadata        JSON         NOT NULL,
    recorded_at     DATETIME(6)  NOT NULL COMMENT 'UTC',
    PRIMARY KEY (global_position),
    -- Serves stream reads (forward and backward) and forbids two events at one version.
    UNIQUE KEY eventfold_events_stream_version_key (stream_id, stream_version),
    -- A duplicate event id fails the append (the Go side reports ErrDuplicateEventID).
    UNIQUE KEY eventfold_events_event_id_key (event_id),
    CONSTRAINT eventfold_events_position_positive CHECK (global_position >= 1),
    CONSTRAINT eventfold_events_version_positive CHECK (stream_version >= 1),
    CONSTRAINT eventfold_events_data_json CHECK (JSON_VALID(data)),
    CONSTRAINT eventfold_events_metadata_object CHECK (JSON_VALID(metadata) AND JSON_TYPE(metadata) = 'OBJECT')
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: the append-only event log';

CREATE TABLE eventfold_position (
    id            TINYINT NOT NULL,
    last_position BIGINT  NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT eventfold_position_single_row CHECK (id = 1),
    CONSTRAINT eventfold_position_nonnegative CHECK (last_position >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: global position counter; its row lock orders appends';

