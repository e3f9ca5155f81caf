-- eventfold 00013: a failed eventfold_append_events leaves nothing in the caller's
-- transaction, and identifiers are refused rather than cut, for MySQL 8.0.16+ and MariaDB
-- 10.6+.
--
-- MySQL and MariaDB undo only the failing statement of a procedure, not the CALL. Inside the
-- caller's transaction the procedure of 00005 left the caller to roll back on an error; a
-- caller that handled the error and committed its other work instead (an application that
-- catches a duplicate event id, a DBA script run with mysql --force) committed half an
-- append: when the events' INSERT failed, the stream's version and the position counter had
-- already been raised, so the stream stood at a version whose events do not exist (every
-- append expecting the real version failed from then on) and the position was a dead hole.
-- Now the procedure takes a savepoint when it runs inside the caller's transaction and rolls
-- back to it on any error, so a failed CALL is undone whole, as a failed statement is on
-- PostgreSQL. Outside a transaction nothing changes (it runs in one of its own, as since
-- 00005). The savepoint is named eventfold_append_events_call: a caller's own savepoint of
-- that name would be replaced. Costs no extra round trip.
--
-- It also refuses a stream id or an event type longer than its column (800 bytes) instead of
-- cutting it: JSON_TABLE cut a 900-byte type to 800 bytes without an error even in strict
-- mode, and outside strict mode the stream id parameter was cut too, so two long ids that
-- differ after byte 800 named one stream. (eventfold's Go code refuses identifiers over 200
-- bytes before any SQL; this is for CALLs written by hand.)
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up
--
-- Down restores the procedure of 00005.

-- +goose Up

DROP PROCEDURE IF EXISTS eventfold_append_events;

-- eventfold_append_events: arguments, result and errors as in 00005; all or nothing however
-- it is called.
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_events(
    IN p_stream_id        VARBINARY(801),                 -- one byte over the column: see below
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
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;              -- called inside a transaction
    DECLARE v_own_tx  BOOLEAN DEFAULT FALSE;              -- this CALL opened the transaction

    DECLARE v_savepoint BOOLEAN DEFAULT FALSE;            -- set in the caller's transaction

    -- Any error: undo what this CALL did, then raise the error unchanged. In its own
    -- transaction: roll it back. In the caller's: roll back to the savepoint taken at the
    -- start, so the caller's transaction holds nothing of this CALL (whether to roll back the
    -- rest is the caller's decision). A deadlock has already rolled the whole transaction
    -- back, savepoint included: then there is nothing left to undo (1305 is ignored).
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        IF v_own_tx THEN
            ROLLBACK;
        ELSEIF v_savepoint THEN
            BEGIN
                DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;
                ROLLBACK TO SAVEPOINT eventfold_append_events_call;
            END;
        END IF;
        RESIGNAL;
    END;

    -- 1. Arguments. Nested IFs because MySQL does not promise to short-circuit OR, and
    --    JSON_TYPE fails on text that is not JSON.
    IF p_stream_id IS NULL OR p_stream_id = '' THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: empty stream id';
    END IF;
    -- The id is kept as bytes now: refuse bytes that are not UTF-8 (a round trip through
    -- utf8mb4 turns them into '?'), as eventfold's Go validation does before any SQL.
    -- Longer than the column: refused, never cut. A value too long for a parameter is cut
    -- without an error when sql_mode is not strict, so the parameter holds one byte more than
    -- the column and any id that fills it is refused.
    IF LENGTH(p_stream_id) > 800 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: stream id is longer than 800 bytes';
    END IF;
    IF CONVERT(CONVERT(p_stream_id USING utf8mb4) USING binary) <> p_stream_id THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: stream id is not valid UTF-8';
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
    -- VARBINARY columns: compared byte for byte, the way they are stored.
    SELECT COUNT(*) INTO v_invalid
    FROM JSON_TABLE(p_events, '$[*]' COLUMNS (
            id           VARBINARY(800) PATH '$.id',
            type         VARBINARY(801) PATH '$.type',   -- JSON_TABLE cuts what is longer
            has_data     INT EXISTS PATH '$.data',
            metadata     JSON PATH '$.metadata'
         )) AS jt
    WHERE jt.id IS NULL OR jt.type IS NULL OR jt.type = '' OR LENGTH(jt.type) > 800
       OR LENGTH(jt.id) <> 36
       OR jt.has_data = 0
       OR (jt.metadata IS NOT NULL AND JSON_TYPE(jt.metadata) <> 'OBJECT');
    IF v_invalid > 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: each event needs a 36-character id, a type of 1 to 800 bytes, data, and object metadata';
    END IF;

    -- 2. Outside a transaction, open one: every statement below commits together or not at
    --    all. Whether a transaction is active is asked in a way both servers answer alike:
    --    SET TRANSACTION (without SESSION/GLOBAL) fails with 1568 while one is (after START
    --    TRANSACTION/BEGIN, or once autocommit=0 has touched a table), and otherwise only
    --    makes the next transaction, ours, read-write. (MariaDB's @@in_transaction says the
    --    same, but MySQL 8 has no such variable.)
    BEGIN
        DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
        SET TRANSACTION READ WRITE;
    END;
    IF NOT v_in_tx THEN
        SET v_own_tx = TRUE;
        START TRANSACTION;
    ELSE
        SAVEPOINT eventfold_append_events_call;
        SET v_savepoint = TRUE;
    END IF;

    -- 3. Lock the stream row; when the expectation allows a new stream, create it first.
    --    Concurrent appends to one stream queue here, one at a time; appends to other streams
    --    are not held up by this lock. The INSERT comes before the locking read so that no
    --    gap lock is ever taken (see the header): ON DUPLICATE KEY UPDATE (a no-op update)
    --    takes the existing row's exclusive record lock directly, and waits for a concurrent
    --    creator of the same stream to end. The version read then is the one step 4 judges.
    IF p_expected_version IN (-1, -2, 0) THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at)
        VALUES (p_stream_id, 0, v_now)
        ON DUPLICATE KEY UPDATE stream_id = stream_id;
    END IF;
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_current = NULL;
        SELECT version INTO v_current
        FROM eventfold_streams WHERE stream_id = p_stream_id FOR UPDATE;
    END;
    IF v_current IS NULL THEN
        SET v_current = 0;
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
            id       VARBINARY(36)  PATH '$.id',
            type     VARBINARY(800) PATH '$.type',
            data     JSON           PATH '$.data',
            metadata JSON           PATH '$.metadata'
         )) AS jt;

    -- 7. What was recorded, in event order.
    SELECT global_position, stream_version, recorded_at
    FROM eventfold_events
    WHERE global_position BETWEEN v_last - v_count + 1 AND v_last
    ORDER BY global_position;

    IF v_own_tx THEN
        COMMIT;
    ELSE
        RELEASE SAVEPOINT eventfold_append_events_call;
    END IF;
END
-- +goose StatementEnd

-- +goose Down

DROP PROCEDURE IF EXISTS eventfold_append_events;

-- The procedure of 00005, unchanged.
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_events(
    IN p_stream_id        VARBINARY(800),
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
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;              -- called inside a transaction
    DECLARE v_own_tx  BOOLEAN DEFAULT FALSE;              -- this CALL opened the transaction

    -- Any error: undo what this CALL's own transaction did, then raise the error unchanged.
    -- In the caller's transaction, rolling back is the caller's decision.
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        IF v_own_tx THEN
            ROLLBACK;
        END IF;
        RESIGNAL;
    END;

    -- 1. Arguments. Nested IFs because MySQL does not promise to short-circuit OR, and
    --    JSON_TYPE fails on text that is not JSON.
    IF p_stream_id IS NULL OR p_stream_id = '' THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: empty stream id';
    END IF;
    -- The id is kept as bytes now: refuse bytes that are not UTF-8 (a round trip through
    -- utf8mb4 turns them into '?'), as eventfold's Go validation does before any SQL.
    IF CONVERT(CONVERT(p_stream_id USING utf8mb4) USING binary) <> p_stream_id THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: stream id is not valid UTF-8';
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
    -- VARBINARY columns: compared byte for byte, the way they are stored.
    SELECT COUNT(*) INTO v_invalid
    FROM JSON_TABLE(p_events, '$[*]' COLUMNS (
            id           VARBINARY(800) PATH '$.id',
            type         VARBINARY(800) PATH '$.type',
            has_data     INT EXISTS PATH '$.data',
            metadata     JSON PATH '$.metadata'
         )) AS jt
    WHERE jt.id IS NULL OR jt.type IS NULL OR jt.type = '' OR LENGTH(jt.id) <> 36
       OR jt.has_data = 0
       OR (jt.metadata IS NOT NULL AND JSON_TYPE(jt.metadata) <> 'OBJECT');
    IF v_invalid > 0 THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: invalid append: each event needs a 36-character id, a type, data, and object metadata';
    END IF;

    -- 2. Outside a transaction, open one: every statement below commits together or not at
    --    all. Whether a transaction is active is asked in a way both servers answer alike:
    --    SET TRANSACTION (without SESSION/GLOBAL) fails with 1568 while one is (after START
    --    TRANSACTION/BEGIN, or once autocommit=0 has touched a table), and otherwise only
    --    makes the next transaction, ours, read-write. (MariaDB's @@in_transaction says the
    --    same, but MySQL 8 has no such variable.)
    BEGIN
        DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
        SET TRANSACTION READ WRITE;
    END;
    IF NOT v_in_tx THEN
        SET v_own_tx = TRUE;
        START TRANSACTION;
    END IF;

    -- 3. Lock the stream row; when the expectation allows a new stream, create it first.
    --    Concurrent appends to one stream queue here, one at a time; appends to other streams
    --    are not held up by this lock. The INSERT comes before the locking read so that no
    --    gap lock is ever taken (see the header): ON DUPLICATE KEY UPDATE (a no-op update)
    --    takes the existing row's exclusive record lock directly, and waits for a concurrent
    --    creator of the same stream to end. The version read then is the one step 4 judges.
    IF p_expected_version IN (-1, -2, 0) THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at)
        VALUES (p_stream_id, 0, v_now)
        ON DUPLICATE KEY UPDATE stream_id = stream_id;
    END IF;
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_current = NULL;
        SELECT version INTO v_current
        FROM eventfold_streams WHERE stream_id = p_stream_id FOR UPDATE;
    END;
    IF v_current IS NULL THEN
        SET v_current = 0;
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
            id       VARBINARY(36)  PATH '$.id',
            type     VARBINARY(800) PATH '$.type',
            data     JSON           PATH '$.data',
            metadata JSON           PATH '$.metadata'
         )) AS jt;

    -- 7. What was recorded, in event order.
    SELECT global_position, stream_version, recorded_at
    FROM eventfold_events
    WHERE global_position BETWEEN v_last - v_count + 1 AND v_last
    ORDER BY global_position;

    IF v_own_tx THEN
        COMMIT;
    END IF;
END
-- +goose StatementEnd
