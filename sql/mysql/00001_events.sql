-- eventfold 00001: the event log for MySQL 8.0.16+ and MariaDB 10.6+.
--
-- What this creates (all names prefixed eventfold_, never touching your own tables):
--   eventfold_streams        one row per stream: its current version (the lock we append under)
--   eventfold_events         the append-only log, ordered by global_position
--   eventfold_position       a one-row counter that hands out global positions
--   eventfold_append_events  the stored procedure every append goes through
--
-- Apply with the stock goose CLI (the table name keeps clear of your own goose table):
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up
--
-- Why a counter row instead of AUTO_INCREMENT: an auto-increment value is taken at INSERT
-- but becomes visible at COMMIT, so transactions commit out of position order, and a reader
-- polling "position > last seen" can pass over an event that commits a moment later. Here
-- every append bumps eventfold_position inside its transaction; that row lock is held until
-- COMMIT/ROLLBACK, so the next appender cannot take positions until the previous one has
-- finished: positions become visible strictly in order, with no holes (a rolled-back
-- append gives its positions back). The price: appends to ALL streams serialise from the
-- moment the procedure takes positions until the transaction ends, so keep transactions that
-- append short (do slow work before the append, not after it).
--
-- Isolation: eventfold runs its transactions at READ COMMITTED. At REPEATABLE READ (the server
-- default) two transactions creating the same new stream take gap locks and one of them gets
-- a deadlock (1213) instead of a clean "wrong expected version"; that is still safe (retry),
-- just less tidy.
--
-- MySQL vs MariaDB differences that matter here:
--   * JSON is a real binary type in MySQL (documents are normalised on the way in); in MariaDB
--     it is LONGTEXT with an automatic JSON_VALID check (documents are stored as sent). The
--     explicit CHECK constraints below are accepted by both.
--   * CHECK constraints are enforced from MySQL 8.0.16 and MariaDB 10.2.
--   * JSON_TABLE exists in MySQL 8.0.4+ and MariaDB 10.6+; the COLUMNS clause used below
--     (FOR ORDINALITY, PATH, EXISTS PATH, a JSON-typed column returning a sub-document) is
--     spelled the same in both.
--   * MariaDB before 11.1 names the isolation variable tx_isolation, MySQL 8
--     transaction_isolation; eventfold sets the level per transaction, so neither is needed.

-- +goose Up

-- Streams. stream_id is compared byte for byte (utf8mb4_bin): "Order-1" and "order-1" are two
-- streams, as on every other eventfold database. version is the number of events in the stream.
CREATE TABLE eventfold_streams (
    stream_id  VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    version    BIGINT      NOT NULL,
    updated_at DATETIME(6) NOT NULL COMMENT 'UTC',
    PRIMARY KEY (stream_id),
    CONSTRAINT eventfold_streams_version_nonnegative CHECK (version >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: one row per stream, locked by every append to it';

-- The log. global_position is assigned by eventfold_append_events from eventfold_position
-- (deliberately not AUTO_INCREMENT, see above). recorded_at is UTC with microseconds.
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

-- The position counter: exactly one row (id = 1). last_position is the highest position ever
-- handed out by a committed append; it never goes back, even when events are archived away.
CREATE TABLE eventfold_position (
    id            TINYINT NOT NULL,
    last_position BIGINT  NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT eventfold_position_single_row CHECK (id = 1),
    CONSTRAINT eventfold_position_nonnegative CHECK (last_position >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin
  COMMENT = 'eventfold: global position counter; its row lock orders appends';

INSERT INTO eventfold_position (id, last_position) VALUES (1, 0);

-- eventfold_append_events appends p_events to stream p_stream_id if the stream's version meets
-- p_expected_version, and returns one row per event: global_position, stream_version,
-- recorded_at (in event order). Call it inside a transaction; the caller commits.
--
--   p_expected_version: -1 any version, -2 the stream must not exist, -3 the stream must exist,
--                       n >= 0 the stream must be at exactly version n (0 = must not exist).
--   p_events:           a non-empty JSON array of objects
--                       {"id": "<uuid>", "type": "<name>", "data": <any JSON>, "metadata": {<object>}}
--                       ("metadata" may be left out: it becomes {}).
--
-- Errors it raises (SQLSTATE 45000):
--   31001 'eventfold: wrong expected version: actual=<n>'   the expectation failed; n is the
--                                                          stream's version (0: no stream)
--   31002 'eventfold: invalid append: ...'                  bad arguments
--   31003 'eventfold: eventfold_position has no row 1'      the counter row was deleted
-- and, from the tables: 1062 on eventfold_events_event_id_key for a duplicate event id.
--
-- Worked example (the event ids must be new UUIDs):
--   START TRANSACTION;
--   CALL eventfold_append_events('account-42', -2,
--     '[{"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "type": "AccountOpened",
--        "data": {"owner": "Ada"}, "metadata": {"correlation_id": "abc"}},
--       {"id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "type": "MoneyDeposited",
--        "data": {"amount": 100}}]');
--   -- global_position | stream_version | recorded_at
--   --               1 |              1 | 2026-11-26 10:00:00.123456
--   --               2 |              2 | 2026-11-26 10:00:00.123456
--   COMMIT;
--   -- The same CALL again now fails: ERROR 31001 (45000): eventfold: wrong expected version: actual=2
--
-- SQL SECURITY INVOKER: the procedure runs with the caller's privileges, so the application
-- account needs EXECUTE on it plus SELECT/INSERT/UPDATE on the three tables, and nothing
-- depends on the account that applied the migration still existing.
--
-- The parameters are declared utf8mb4 explicitly: a routine's string parameters otherwise take
-- the database's default character set, which may be latin1 and would mangle stream ids and
-- payloads. p_events is LONGTEXT rather than JSON for the same reason: MariaDB 10.11 gives a
-- JSON routine parameter the database's character set (in a latin1 database an emoji in the
-- payload fails with error 1366). JSON_TABLE parses the text on both servers.
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_events(
    IN p_stream_id        VARCHAR(200) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    IN p_expected_version BIGINT,
    IN p_events           LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
COMMENT 'eventfold: append events to one stream under an expected-version check'
BEGIN
    DECLARE v_count   BIGINT;                             -- number of events
    DECLARE v_current BIGINT DEFAULT NULL;                -- stream version before the append
    DECLARE v_last    BIGINT;                             -- last position taken from the counter
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_invalid BIGINT;
    DECLARE v_msg     VARCHAR(128);

    -- 1. Arguments. Nested IFs because MySQL does not promise to short-circuit OR, and
    --    JSON_TYPE fails on text that is not JSON.
    IF p_stream_id IS NULL OR p_stream_id = '' THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: empty stream id';
    END IF;
    IF p_expected_version IS NULL OR p_expected_version < -3 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: expected version must be -1, -2, -3 or >= 0';
    END IF;
    IF p_events IS NULL OR NOT JSON_VALID(p_events) THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: events are not valid JSON';
    END IF;
    IF JSON_TYPE(p_events) <> 'ARRAY' OR JSON_LENGTH(p_events) = 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: events must be a non-empty JSON array';
    END IF;
    SET v_count = JSON_LENGTH(p_events);
    -- Every element needs a string id and type and some data; metadata, when given, is an
    -- object. Checked here rather than left to NOT NULL, whose behaviour depends on sql_mode.
    SELECT COUNT(*) INTO v_invalid
    FROM JSON_TABLE(p_events, '$[*]' COLUMNS (
            id           VARCHAR(200) CHARACTER SET utf8mb4 PATH '$.id',
            type         VARCHAR(200) CHARACTER SET utf8mb4 PATH '$.type',
            has_data     INT EXISTS PATH '$.data',
            metadata     JSON PATH '$.metadata'
         )) AS jt
    WHERE jt.id IS NULL OR jt.type IS NULL OR jt.type = '' OR CHAR_LENGTH(jt.id) <> 36
       OR jt.has_data = 0
       OR (jt.metadata IS NOT NULL AND JSON_TYPE(jt.metadata) <> 'OBJECT');
    IF v_invalid > 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: each event needs a 36-character id, a type, data, and object metadata';
    END IF;

    -- 2. Lock the stream row. Concurrent appends to one stream queue here, one at a time;
    --    appends to other streams are not held up by this lock.
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_current = NULL;
        SELECT version INTO v_current
        FROM eventfold_streams WHERE stream_id = p_stream_id FOR UPDATE;
    END;

    -- 3. A new stream: create its row, unless the expectation already rules that out. If
    --    another transaction creates the same stream concurrently, our INSERT waits for it.
    --    ON DUPLICATE KEY UPDATE (a no-op update) makes the loser take the row's exclusive
    --    lock directly: a plain INSERT would leave it a shared lock from the duplicate-key
    --    check, and two losers upgrading that lock to read the version FOR UPDATE deadlock
    --    each other. Then read (and lock) the version that won; step 4 judges it: NoStream/0
    --    fails with the real version, Any goes on appending.
    IF v_current IS NULL THEN
        IF p_expected_version IN (-1, -2, 0) THEN
            INSERT INTO eventfold_streams (stream_id, version, updated_at)
            VALUES (p_stream_id, 0, v_now)
            ON DUPLICATE KEY UPDATE stream_id = stream_id;
            BEGIN
                DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_current = 0;
                SELECT version INTO v_current
                FROM eventfold_streams WHERE stream_id = p_stream_id FOR UPDATE;
            END;
        ELSE
            SET v_current = 0;
        END IF;
    END IF;

    -- 4. The expectation.
    IF NOT (p_expected_version = -1
            OR (p_expected_version = -2 AND v_current = 0)
            OR (p_expected_version = -3 AND v_current > 0)
            OR (p_expected_version >= 0 AND v_current = p_expected_version)) THEN
        SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current);
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
    END IF;

    UPDATE eventfold_streams
    SET version = v_current + v_count, updated_at = v_now
    WHERE stream_id = p_stream_id;

    -- 5. Positions, as late as possible: from here until COMMIT/ROLLBACK every other append
    --    (any stream) waits on this row lock. LAST_INSERT_ID(expr) hands the new value back
    --    to this session without a second read.
    UPDATE eventfold_position
    SET last_position = LAST_INSERT_ID(last_position + v_count)
    WHERE id = 1;
    IF ROW_COUNT() = 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;
    SET v_last = LAST_INSERT_ID();

    -- 6. The events: positions v_last-v_count+1 .. v_last, versions v_current+1 .. in array
    --    order. JSON null data arrives as SQL NULL on some versions: store it as JSON null.
    --    String columns name their character set: MariaDB otherwise gives JSON_TABLE's
    --    columns the database's default one (MySQL uses utf8mb4 anyway).
    INSERT INTO eventfold_events
        (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    SELECT v_last - v_count + jt.ord,
           p_stream_id,
           v_current + jt.ord,
           jt.id,
           jt.type,
           COALESCE(jt.data, 'null'),
           COALESCE(jt.metadata, '{}'),
           v_now
    FROM JSON_TABLE(p_events, '$[*]' COLUMNS (
            ord      FOR ORDINALITY,
            id       CHAR(36)     CHARACTER SET utf8mb4 PATH '$.id',
            type     VARCHAR(200) CHARACTER SET utf8mb4 PATH '$.type',
            data     JSON         PATH '$.data',
            metadata JSON         PATH '$.metadata'
         )) AS jt;

    -- 7. What was recorded, in event order.
    SELECT global_position, stream_version, recorded_at
    FROM eventfold_events
    WHERE global_position BETWEEN v_last - v_count + 1 AND v_last
    ORDER BY global_position;
END
-- +goose StatementEnd

-- +goose Down
DROP PROCEDURE IF EXISTS eventfold_append_events;
DROP TABLE IF EXISTS eventfold_position;
DROP TABLE IF EXISTS eventfold_events;
DROP TABLE IF EXISTS eventfold_streams;
