-- eventfold 00021: a session with autocommit=0 is the caller's transaction for the append
-- procedures, for MySQL 8.0.19+ and MariaDB 10.6+.
--
-- With autocommit=0 a session is one transaction from its first statement to its COMMIT or
-- ROLLBACK, but the server counts the transaction as active only once a statement has touched a
-- table. 00020's procedures asked only the server (SET TRANSACTION failing with 1568;
-- MariaDB's @@in_transaction for the library's two), so a CALL that came first in such a
-- session found no transaction: eventfold_append_events opened and COMMITted one of its own,
-- and the session's later ROLLBACK undid its other writes but not the append (attack3,
-- internal/dialect/mysql/attack3_autocommit_off_test.go); eventfold_append_one and
-- eventfold_append_batch refused with 31002 'must be called inside a transaction', although
-- the session was one.
--
-- Now @@autocommit = 0 counts as "inside the caller's transaction" in all three: a savepoint
-- of their own, no COMMIT, a failure rolls back to the savepoint, and the session's COMMIT or
-- ROLLBACK decides. eventfold_append_events no longer asks SET TRANSACTION READ WRITE then (it
-- would have set the session's coming transaction read-write over a SET TRANSACTION READ
-- ONLY). The XA probe (00020, MariaDB only) is asked only while @@in_transaction = 1: with
-- autocommit=0 and nothing begun, XA START would succeed and begin an XA branch (seen on
-- MariaDB 10.11); no XA branch can be active then, since XA START, XA END and XA PREPARE all
-- leave @@in_transaction = 1 (seen on MariaDB 10.11). A savepoint taken before the first
-- table is touched is rolled back to correctly: ROLLBACK TO SAVEPOINT undoes every row written
-- after it (seen on MariaDB 10.11). Cost: one more variable read per CALL (and, in
-- eventfold_append_events, one more procedure instruction), no statement sent by the client,
-- no round trip; not timed.
--
-- Tested on MariaDB 10.11 only (MySQL 8 cannot be installed here; on MySQL the change is the
-- @@autocommit read, the XA probe being MariaDB's): SET autocommit=0; CALL ...; INSERT ...;
-- ROLLBACK leaves neither the append nor the INSERT, COMMIT keeps both, and a CALL that fails
-- first leaves the session's transaction usable, for each of the three procedures; with SET
-- TRANSACTION READ ONLY first, eventfold_append_events is refused (1792) and keeps nothing
-- (internal/dialect/mysql/attack3_autocommit_off_test.go: on 00020 the append stayed, or
-- 31002, or READ ONLY was overridden; without the @@in_transaction guard on the XA probe every
-- case failed with 1399). An upgrade from 00020 with events, down to 00020 and up again:
-- migrate_00021_mysql_test.go.
--
-- Everything else is 00020's procedures unchanged. Down restores them.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up

-- +goose Up
DROP PROCEDURE IF EXISTS eventfold_append_events;
DROP PROCEDURE IF EXISTS eventfold_append_one;
DROP PROCEDURE IF EXISTS eventfold_append_batch;

-- eventfold_append_events: arguments, result and errors as in 00005; all or nothing however
-- it is called (00013); positions from AUTO_INCREMENT under the gate (see the header).
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
    DECLARE v_gate    BIGINT;                            -- the gate row, locked in share mode
    DECLARE v_done    BIGINT DEFAULT 0;                   -- events inserted so far
    DECLARE v_chunk   BIGINT;                             -- events in the next INSERT
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_invalid BIGINT;
    DECLARE v_msg     VARCHAR(128);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;              -- called inside a transaction
    DECLARE v_xa      BOOLEAN DEFAULT FALSE;              -- called inside an XA transaction (00020)
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
    --    With autocommit=0 the session is one transaction from its first statement, begun or
    --    not (00021): a CALL that comes first joins it (savepoint, no COMMIT of its own), and
    --    SET TRANSACTION is not asked (it would make the session's transaction read-write).
    SET v_in_tx = (@@autocommit = 0);
    IF NOT v_in_tx THEN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
            SET TRANSACTION READ WRITE;
        END;
    END IF;
    IF NOT v_in_tx THEN
        SET v_own_tx = TRUE;
        START TRANSACTION;
    ELSE
        -- Not inside an XA transaction (00020): MariaDB releases a transaction's share locks at
        -- XA PREPARE, the gate's among them, so readers would prove positions settled past this
        -- append's while its branch waits for XA COMMIT. XA START fails with 1400 inside an
        -- ordinary transaction and with 1399 inside an XA one, and changes nothing either way.
        -- MariaDB only (its executable comment): MySQL skips it.
        -- Asked only while a transaction is active (00021): with autocommit=0 and nothing begun
        -- yet, XA START would begin an XA branch; no XA branch is active then (XA START sets
        -- @@in_transaction).
        BEGIN
            /*M! DECLARE CONTINUE HANDLER FOR 1400 BEGIN END;
            DECLARE CONTINUE HANDLER FOR 1399 SET v_xa = TRUE;
            IF @@in_transaction = 1 THEN XA START 'eventfold-probe'; END IF; */
        END;
        IF v_xa THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31005,
                MESSAGE_TEXT = 'eventfold: append inside an XA transaction refused (MariaDB drops its gate lock at XA PREPARE)';
        END IF;
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

    -- 5. The gate: a share lock on the eventfold_position row, taken before any position is
    --    allocated and held to COMMIT/ROLLBACK. Share locks do not wait for one another, so
    --    appends of different streams do not queue here; a reader that finds a position
    --    missing below a committed one takes this row FOR UPDATE, which waits until every
    --    append that may have allocated that position has ended (see the header).
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
        SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;

    -- 6. The events, versions v_current+1 .. in array order; positions from AUTO_INCREMENT,
    --    ascending in array order. An INSERT ... SELECT reserves auto-increment values 1, 2,
    --    4, 8, ... at a time and loses what it does not use, so the events go in chunks of
    --    2^k - 1 rows (7 events: one INSERT; 10: 7 + 3), which use exactly what they reserve
    --    and leave no dead positions behind. JSON null data arrives as SQL NULL on some
    --    versions: store it as JSON null.
    WHILE v_done < v_count DO
        SET v_chunk = 1;
        WHILE v_chunk < 32767 AND v_chunk * 2 + 1 <= v_count - v_done DO
            SET v_chunk = v_chunk * 2 + 1;
        END WHILE;
        INSERT INTO eventfold_events
            (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
        SELECT p_stream_id,
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
             )) AS jt
        WHERE jt.ord > v_done AND jt.ord <= v_done + v_chunk
        ORDER BY jt.ord;
        IF v_done = 0 AND CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
            SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
        END IF;
        SET v_done = v_done + v_chunk;
    END WHILE;

    -- 7. What was recorded, in event order.
    SELECT global_position, stream_version, recorded_at
    FROM eventfold_events
    WHERE stream_id = p_stream_id AND stream_version BETWEEN v_current + 1 AND v_current + v_count
    ORDER BY stream_version;

    IF v_own_tx THEN
        COMMIT;
    ELSE
        RELEASE SAVEPOINT eventfold_append_events_call;
    END IF;
END
-- +goose StatementEnd

-- eventfold_append_one (since 00017 it asks MariaDB whether a transaction is active from
-- @@in_transaction): the Go library's append of a single event (one CALL, no JSON to
-- parse). Not for hand-written SQL: it trusts its arguments (the library has validated the
-- stream id, the event id, the type and the JSON before any SQL; the table's constraints
-- still refuse what does not fit) and must be called inside a transaction (since 00016 it refuses a call outside one, 31002,
-- before it writes anything; since 00021 autocommit=0 counts as inside one). A failure rolls
-- back to a savepoint of its own and is raised unchanged, so it leaves nothing behind.
-- Returns one row: global_position, stream_version, recorded_at. Errors as
-- eventfold_append_events: 31001 'eventfold: wrong expected version: actual=<n>', 31003, 1062.
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_one(
    IN p_stream_id        VARBINARY(800),
    IN p_expected_version BIGINT,
    IN p_event_id         VARBINARY(36),
    IN p_event_type       VARBINARY(800),
    IN p_data             LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    IN p_metadata         LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
COMMENT 'eventfold: the Go library''s one-event append (validated arguments, inside a transaction)'
BEGIN
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_current BIGINT DEFAULT NULL;                -- stream version before the append
    DECLARE v_gate    BIGINT;
    DECLARE v_msg     VARCHAR(128);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
    DECLARE v_xa      BOOLEAN DEFAULT FALSE;              -- called inside an XA transaction (00020)
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;  -- a deadlock took the savepoint too
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
    -- Only inside a transaction (the check eventfold_append_events makes: SET TRANSACTION
    -- fails with 1568 while one is active): in autocommit every statement below would
    -- commit on its own, and the savepoint would protect nothing.
    -- MariaDB answers from @@in_transaction (no error raised and caught on every call); MySQL,
    -- which has no such variable and skips MariaDB's executable comment, and MariaDB when
    -- the variable says no, ask with SET TRANSACTION as 00016 did.
    -- With autocommit=0 the session is one transaction from its first statement, begun or not
    -- (00021): a CALL that comes first is inside it, as a CALL after START TRANSACTION is.
    SET v_in_tx = /*M! @@in_transaction = 1 OR */ @@autocommit = 0;
    IF NOT v_in_tx THEN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
            SET TRANSACTION READ WRITE;
        END;
    END IF;
    IF NOT v_in_tx THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: eventfold_append_one must be called inside a transaction';
    END IF;
    -- Not inside an XA transaction (00020): MariaDB releases a transaction's share locks at
    -- XA PREPARE, the gate's among them, so readers would prove positions settled past this
    -- append's while its branch waits for XA COMMIT. XA START fails with 1400 inside an
    -- ordinary transaction and with 1399 inside an XA one, and changes nothing either way.
    -- MariaDB only (its executable comment): MySQL skips it.
    -- Asked only while a transaction is active (00021): with autocommit=0 and nothing begun yet,
    -- XA START would begin an XA branch; no XA branch is active then (XA START sets
    -- @@in_transaction).
    BEGIN
        /*M! DECLARE CONTINUE HANDLER FOR 1400 BEGIN END;
        DECLARE CONTINUE HANDLER FOR 1399 SET v_xa = TRUE;
        IF @@in_transaction = 1 THEN XA START 'eventfold-probe'; END IF; */
    END;
    IF v_xa THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31005,
            MESSAGE_TEXT = 'eventfold: append inside an XA transaction refused (MariaDB drops its gate lock at XA PREPARE)';
    END IF;
    SAVEPOINT eventfold_append_call;

    -- The stream row: locked, checked and raised in as few statements as the expectation
    -- allows. LAST_INSERT_ID(version + 1) hands the version the row had back to this session
    -- (0 stays when the INSERT created the row), whatever the client's found-rows flag.
    SET v_current = LAST_INSERT_ID(0);
    IF p_expected_version = -1 THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
        ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1), updated_at = v_now;
        SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
    ELSEIF p_expected_version IN (-2, 0) THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
        ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1;
        SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
        IF v_current <> 0 THEN
            SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
        END IF;
        IF LAST_INSERT_ID() = 1 THEN                      -- an existing row at version 0
            UPDATE eventfold_streams SET version = 1, updated_at = v_now WHERE stream_id = p_stream_id;
        END IF;
    ELSE
        UPDATE eventfold_streams SET version = LAST_INSERT_ID(version) + 1, updated_at = v_now
        WHERE stream_id = p_stream_id
          AND (version = p_expected_version OR (p_expected_version = -3 AND version > 0));
        IF ROW_COUNT() = 1 THEN
            SET v_current = CAST(LAST_INSERT_ID() AS SIGNED);
        ELSE
            SELECT COALESCE(MAX(version), 0) INTO v_current FROM eventfold_streams WHERE stream_id = p_stream_id;
            SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
        END IF;
    END IF;

    -- The gate (share lock, to COMMIT/ROLLBACK), then the position from AUTO_INCREMENT.
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
        SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;
    INSERT INTO eventfold_events
        (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    VALUES (p_stream_id, v_current + 1, p_event_id, p_event_type, p_data, p_metadata, v_now);

    IF CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
        SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
    END IF;

    RELEASE SAVEPOINT eventfold_append_call;
    SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS global_position, v_current + 1 AS stream_version, v_now AS recorded_at;
END
-- +goose StatementEnd

-- eventfold_append_batch: the Go library's append of several events or several streams
-- (AppendMany, batched group commit) in one CALL. p_batch is a JSON array of {"s": stream
-- id, "x": expected version, "e": [events as eventfold_append_events takes them]},
-- validated by the library; call it inside a transaction (it refuses a call outside one,
-- 31002, before it writes anything; since 00021 autocommit=0 counts as inside one).
-- Each element is checked and its stream row raised in
-- array order (a stream may appear twice), the gate is taken, then the events go in: up to
-- 128 events and 256 KiB one single-row INSERT per event (since 00017), above that in
-- chunks of 2^k - 1 rows. Returns global_position, stream_version, recorded_at per event
-- in batch order. A failure rolls back to its own savepoint and is raised; a refused
-- expectation is 31001 'eventfold: wrong expected version: actual=<n> index=<i>' (i from 0).
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_batch(
    IN p_batch LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
COMMENT 'eventfold: the Go library''s multi-stream append (validated arguments, inside a transaction)'
BEGIN
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_n       BIGINT;
    DECLARE v_i       BIGINT DEFAULT 0;
    DECLARE v_cnt     BIGINT;
    DECLARE v_exp     BIGINT;
    DECLARE v_current BIGINT;
    DECLARE v_total   BIGINT DEFAULT 0;
    DECLARE v_done    BIGINT DEFAULT 0;
    DECLARE v_chunk   BIGINT;
    DECLARE v_stream  VARBINARY(800);
    DECLARE v_bases   LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT '[';
    DECLARE v_gate    BIGINT;
    DECLARE v_msg     VARCHAR(160);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
    DECLARE v_xa      BOOLEAN DEFAULT FALSE;              -- called inside an XA transaction (00020)
    DECLARE v_j       BIGINT;
    DECLARE v_el      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;  -- one element
    DECLARE v_ev      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;  -- one event
    DECLARE v_out     LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT '[';
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
    -- Only inside a transaction (the check eventfold_append_events makes: SET TRANSACTION
    -- fails with 1568 while one is active): in autocommit every statement below would
    -- commit on its own, and the savepoint would protect nothing.
    -- MariaDB answers from @@in_transaction (no error raised and caught on every call); MySQL,
    -- which has no such variable and skips MariaDB's executable comment, and MariaDB when
    -- the variable says no, ask with SET TRANSACTION as 00016 did.
    -- With autocommit=0 the session is one transaction from its first statement, begun or not
    -- (00021): a CALL that comes first is inside it, as a CALL after START TRANSACTION is.
    SET v_in_tx = /*M! @@in_transaction = 1 OR */ @@autocommit = 0;
    IF NOT v_in_tx THEN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
            SET TRANSACTION READ WRITE;
        END;
    END IF;
    IF NOT v_in_tx THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: eventfold_append_batch must be called inside a transaction';
    END IF;
    -- Not inside an XA transaction (00020): MariaDB releases a transaction's share locks at
    -- XA PREPARE, the gate's among them, so readers would prove positions settled past this
    -- append's while its branch waits for XA COMMIT. XA START fails with 1400 inside an
    -- ordinary transaction and with 1399 inside an XA one, and changes nothing either way.
    -- MariaDB only (its executable comment): MySQL skips it.
    -- Asked only while a transaction is active (00021): with autocommit=0 and nothing begun yet,
    -- XA START would begin an XA branch; no XA branch is active then (XA START sets
    -- @@in_transaction).
    BEGIN
        /*M! DECLARE CONTINUE HANDLER FOR 1400 BEGIN END;
        DECLARE CONTINUE HANDLER FOR 1399 SET v_xa = TRUE;
        IF @@in_transaction = 1 THEN XA START 'eventfold-probe'; END IF; */
    END;
    IF v_xa THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31005,
            MESSAGE_TEXT = 'eventfold: append inside an XA transaction refused (MariaDB drops its gate lock at XA PREPARE)';
    END IF;
    SAVEPOINT eventfold_append_call;

    SET v_n = JSON_LENGTH(p_batch);
    WHILE v_i < v_n DO
        SET v_el = COALESCE(/*M! JSON_QUERY(p_batch, CONCAT('$[', v_i, ']')), */ JSON_EXTRACT(p_batch, CONCAT('$[', v_i, ']')));
        SET v_stream = JSON_UNQUOTE(JSON_EXTRACT(v_el, '$.s'));
        SET v_exp = CAST(JSON_EXTRACT(v_el, '$.x') AS SIGNED);
        SET v_cnt = JSON_LENGTH(v_el, '$.e');
        SET v_current = LAST_INSERT_ID(0);
        SET v_msg = NULL;
        IF v_exp = -1 THEN
            INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (v_stream, v_cnt, v_now)
            ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1 + v_cnt, updated_at = v_now;
            SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
        ELSEIF v_exp IN (-2, 0) THEN
            INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (v_stream, v_cnt, v_now)
            ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1;
            SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
            IF v_current <> 0 THEN
                SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current, ' index=', v_i);
            ELSEIF LAST_INSERT_ID() = 1 THEN
                UPDATE eventfold_streams SET version = v_cnt, updated_at = v_now WHERE stream_id = v_stream;
            END IF;
        ELSE
            UPDATE eventfold_streams SET version = LAST_INSERT_ID(version) + v_cnt, updated_at = v_now
            WHERE stream_id = v_stream
              AND (version = v_exp OR (v_exp = -3 AND version > 0));
            IF ROW_COUNT() = 1 THEN
                SET v_current = CAST(LAST_INSERT_ID() AS SIGNED);
            ELSE
                SELECT COALESCE(MAX(version), 0) INTO v_current FROM eventfold_streams WHERE stream_id = v_stream;
                SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current, ' index=', v_i);
            END IF;
        END IF;
        IF v_msg IS NOT NULL THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
        END IF;
        SET v_bases = CONCAT(v_bases, IF(v_i = 0, '', ','), v_current);
        SET v_total = v_total + v_cnt;
        SET v_i = v_i + 1;
    END WHILE;
    SET v_bases = CONCAT(v_bases, ']');

    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
        SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;

    -- The events. A small batch (what group commit and most AppendMany calls send) goes in
    -- one single-row INSERT ... VALUES per event: a "simple insert", which takes its
    -- AUTO_INCREMENT value under InnoDB's short latch (an INSERT ... SELECT holds the table's
    -- AUTO-INC lock to the end of the statement in innodb_autoinc_lock_mode 1, so every other
    -- append waited for its JSON_TABLE), reserves exactly one value (no dead position) and
    -- hands it back with LAST_INSERT_ID(), so the result needs no look-up by event id. Each
    -- event is taken from its element by path, which reads the text from the start: above
    -- 128 events or 256 KiB the chunked INSERT ... SELECT of 00015 is cheaper and is kept.
    -- Data and metadata must be stored as sent (MariaDB keeps JSON as text, and the library
    -- returns the text it sent): MariaDB's JSON_EXTRACT re-spaces an object or array, its
    -- JSON_QUERY returns it as written (and NULL for a scalar, which JSON_EXTRACT returns as
    -- written). JSON_QUERY is MariaDB's only: it is written in MariaDB's executable comment
    -- (M! after the comment's opening), which MariaDB runs and MySQL skips (MySQL stores JSON
    -- in a binary form: the text's spacing is not kept there anyway).
    IF v_total <= 128 AND LENGTH(p_batch) <= 262144 THEN
        SET v_i = 0;
        WHILE v_i < v_n DO
            SET v_el = COALESCE(/*M! JSON_QUERY(p_batch, CONCAT('$[', v_i, ']')), */ JSON_EXTRACT(p_batch, CONCAT('$[', v_i, ']')));
            SET v_stream = JSON_UNQUOTE(JSON_EXTRACT(v_el, '$.s'));
            SET v_cnt = JSON_LENGTH(v_el, '$.e');
            SET v_current = CAST(JSON_EXTRACT(v_bases, CONCAT('$[', v_i, ']')) AS SIGNED);
            SET v_j = 0;
            WHILE v_j < v_cnt DO
                SET v_ev = COALESCE(/*M! JSON_QUERY(v_el, CONCAT('$.e[', v_j, ']')), */ JSON_EXTRACT(v_el, CONCAT('$.e[', v_j, ']')));
                SET v_j = v_j + 1;
                INSERT INTO eventfold_events
                    (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
                VALUES (v_stream, v_current + v_j,
                        JSON_UNQUOTE(JSON_EXTRACT(v_ev, '$.id')),
                        JSON_UNQUOTE(JSON_EXTRACT(v_ev, '$.type')),
                        COALESCE(/*M! JSON_QUERY(v_ev, '$.data'), */ JSON_EXTRACT(v_ev, '$.data'), 'null'),
                        COALESCE(/*M! JSON_QUERY(v_ev, '$.metadata'), */ JSON_EXTRACT(v_ev, '$.metadata'), '{}'),
                        v_now);
                IF v_out = '[' AND CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
                    SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
                    SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
                END IF;
                SET v_out = CONCAT(v_out, IF(v_out = '[', '[', ',['), LAST_INSERT_ID(), ',', v_current + v_j, ']');
            END WHILE;
            SET v_i = v_i + 1;
        END WHILE;
        RELEASE SAVEPOINT eventfold_append_call;
        SELECT jt.p AS global_position, jt.v AS stream_version, v_now AS recorded_at
        FROM JSON_TABLE(CONCAT(v_out, ']'), '$[*]' COLUMNS (
                n FOR ORDINALITY,
                p BIGINT PATH '$[0]',
                v BIGINT PATH '$[1]')) AS jt
        ORDER BY jt.n;
    ELSE
        WHILE v_done < v_total DO
            SET v_chunk = 1;
            WHILE v_chunk < 32767 AND v_chunk * 2 + 1 <= v_total - v_done DO
                SET v_chunk = v_chunk * 2 + 1;
            END WHILE;
            INSERT INTO eventfold_events
                (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
            SELECT b.s, b.version, b.id, b.type, b.data, b.metadata, v_now
            FROM (
                SELECT ROW_NUMBER() OVER (ORDER BY jt.sidx, jt.eord) AS rn,
                       jt.s,
                       CAST(JSON_EXTRACT(v_bases, CONCAT('$[', jt.sidx - 1, ']')) AS SIGNED) + jt.eord AS version,
                       jt.id,
                       jt.type,
                       COALESCE(jt.data, 'null') AS data,
                       COALESCE(jt.metadata, '{}') AS metadata
                FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
                        sidx FOR ORDINALITY,
                        s    VARBINARY(800) PATH '$.s',
                        NESTED PATH '$.e[*]' COLUMNS (
                            eord     FOR ORDINALITY,
                            id       VARBINARY(36)  PATH '$.id',
                            type     VARBINARY(800) PATH '$.type',
                            data     JSON           PATH '$.data',
                            metadata JSON           PATH '$.metadata'))) AS jt
                WHERE jt.eord IS NOT NULL
            ) AS b
            WHERE b.rn > v_done AND b.rn <= v_done + v_chunk
            ORDER BY b.rn;
            IF v_done = 0 AND CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
                SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
            END IF;
            SET v_done = v_done + v_chunk;
        END WHILE;

        RELEASE SAVEPOINT eventfold_append_call;
        SELECT e.global_position, e.stream_version, e.recorded_at
        FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
                sidx FOR ORDINALITY,
                NESTED PATH '$.e[*]' COLUMNS (
                    eord FOR ORDINALITY,
                    id   VARBINARY(36) PATH '$.id'))) AS jt
        JOIN eventfold_events AS e ON e.event_id = jt.id
        ORDER BY jt.sidx, jt.eord;
    END IF;
END
-- +goose StatementEnd

-- +goose Down
DROP PROCEDURE IF EXISTS eventfold_append_events;
DROP PROCEDURE IF EXISTS eventfold_append_one;
DROP PROCEDURE IF EXISTS eventfold_append_batch;

-- eventfold_append_events: arguments, result and errors as in 00005; all or nothing however
-- it is called (00013); positions from AUTO_INCREMENT under the gate (see the header).
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
    DECLARE v_gate    BIGINT;                            -- the gate row, locked in share mode
    DECLARE v_done    BIGINT DEFAULT 0;                   -- events inserted so far
    DECLARE v_chunk   BIGINT;                             -- events in the next INSERT
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_invalid BIGINT;
    DECLARE v_msg     VARCHAR(128);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;              -- called inside a transaction
    DECLARE v_xa      BOOLEAN DEFAULT FALSE;              -- called inside an XA transaction (00020)
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
        -- Not inside an XA transaction (00020): MariaDB releases a transaction's share locks at
        -- XA PREPARE, the gate's among them, so readers would prove positions settled past this
        -- append's while its branch waits for XA COMMIT. XA START fails with 1400 inside an
        -- ordinary transaction and with 1399 inside an XA one, and changes nothing either way.
        -- MariaDB only (its executable comment): MySQL skips it.
        BEGIN
            /*M! DECLARE CONTINUE HANDLER FOR 1400 BEGIN END;
            DECLARE CONTINUE HANDLER FOR 1399 SET v_xa = TRUE;
            XA START 'eventfold-probe'; */
        END;
        IF v_xa THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31005,
                MESSAGE_TEXT = 'eventfold: append inside an XA transaction refused (MariaDB drops its gate lock at XA PREPARE)';
        END IF;
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

    -- 5. The gate: a share lock on the eventfold_position row, taken before any position is
    --    allocated and held to COMMIT/ROLLBACK. Share locks do not wait for one another, so
    --    appends of different streams do not queue here; a reader that finds a position
    --    missing below a committed one takes this row FOR UPDATE, which waits until every
    --    append that may have allocated that position has ended (see the header).
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
        SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;

    -- 6. The events, versions v_current+1 .. in array order; positions from AUTO_INCREMENT,
    --    ascending in array order. An INSERT ... SELECT reserves auto-increment values 1, 2,
    --    4, 8, ... at a time and loses what it does not use, so the events go in chunks of
    --    2^k - 1 rows (7 events: one INSERT; 10: 7 + 3), which use exactly what they reserve
    --    and leave no dead positions behind. JSON null data arrives as SQL NULL on some
    --    versions: store it as JSON null.
    WHILE v_done < v_count DO
        SET v_chunk = 1;
        WHILE v_chunk < 32767 AND v_chunk * 2 + 1 <= v_count - v_done DO
            SET v_chunk = v_chunk * 2 + 1;
        END WHILE;
        INSERT INTO eventfold_events
            (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
        SELECT p_stream_id,
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
             )) AS jt
        WHERE jt.ord > v_done AND jt.ord <= v_done + v_chunk
        ORDER BY jt.ord;
        IF v_done = 0 AND CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
            SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
        END IF;
        SET v_done = v_done + v_chunk;
    END WHILE;

    -- 7. What was recorded, in event order.
    SELECT global_position, stream_version, recorded_at
    FROM eventfold_events
    WHERE stream_id = p_stream_id AND stream_version BETWEEN v_current + 1 AND v_current + v_count
    ORDER BY stream_version;

    IF v_own_tx THEN
        COMMIT;
    ELSE
        RELEASE SAVEPOINT eventfold_append_events_call;
    END IF;
END
-- +goose StatementEnd

-- eventfold_append_one (since 00017 it asks MariaDB whether a transaction is active from
-- @@in_transaction): the Go library's append of a single event (one CALL, no JSON to
-- parse). Not for hand-written SQL: it trusts its arguments (the library has validated the
-- stream id, the event id, the type and the JSON before any SQL; the table's constraints
-- still refuse what does not fit) and must be called inside a transaction (since 00016 it refuses a call outside one, 31002,
-- before it writes anything). A failure rolls
-- back to a savepoint of its own and is raised unchanged, so it leaves nothing behind.
-- Returns one row: global_position, stream_version, recorded_at. Errors as
-- eventfold_append_events: 31001 'eventfold: wrong expected version: actual=<n>', 31003, 1062.
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_one(
    IN p_stream_id        VARBINARY(800),
    IN p_expected_version BIGINT,
    IN p_event_id         VARBINARY(36),
    IN p_event_type       VARBINARY(800),
    IN p_data             LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    IN p_metadata         LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
COMMENT 'eventfold: the Go library''s one-event append (validated arguments, inside a transaction)'
BEGIN
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_current BIGINT DEFAULT NULL;                -- stream version before the append
    DECLARE v_gate    BIGINT;
    DECLARE v_msg     VARCHAR(128);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
    DECLARE v_xa      BOOLEAN DEFAULT FALSE;              -- called inside an XA transaction (00020)
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;  -- a deadlock took the savepoint too
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
    -- Only inside a transaction (the check eventfold_append_events makes: SET TRANSACTION
    -- fails with 1568 while one is active): in autocommit every statement below would
    -- commit on its own, and the savepoint would protect nothing.
    -- MariaDB answers from @@in_transaction (no error raised and caught on every call); MySQL,
    -- which has no such variable and skips MariaDB's executable comment, and MariaDB when
    -- the variable says no, ask with SET TRANSACTION as 00016 did.
    SET v_in_tx = /*M! @@in_transaction = 1 OR */ FALSE;
    IF NOT v_in_tx THEN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
            SET TRANSACTION READ WRITE;
        END;
    END IF;
    IF NOT v_in_tx THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: eventfold_append_one must be called inside a transaction';
    END IF;
    -- Not inside an XA transaction (00020): MariaDB releases a transaction's share locks at
    -- XA PREPARE, the gate's among them, so readers would prove positions settled past this
    -- append's while its branch waits for XA COMMIT. XA START fails with 1400 inside an
    -- ordinary transaction and with 1399 inside an XA one, and changes nothing either way.
    -- MariaDB only (its executable comment): MySQL skips it.
    BEGIN
        /*M! DECLARE CONTINUE HANDLER FOR 1400 BEGIN END;
        DECLARE CONTINUE HANDLER FOR 1399 SET v_xa = TRUE;
        XA START 'eventfold-probe'; */
    END;
    IF v_xa THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31005,
            MESSAGE_TEXT = 'eventfold: append inside an XA transaction refused (MariaDB drops its gate lock at XA PREPARE)';
    END IF;
    SAVEPOINT eventfold_append_call;

    -- The stream row: locked, checked and raised in as few statements as the expectation
    -- allows. LAST_INSERT_ID(version + 1) hands the version the row had back to this session
    -- (0 stays when the INSERT created the row), whatever the client's found-rows flag.
    SET v_current = LAST_INSERT_ID(0);
    IF p_expected_version = -1 THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
        ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1), updated_at = v_now;
        SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
    ELSEIF p_expected_version IN (-2, 0) THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
        ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1;
        SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
        IF v_current <> 0 THEN
            SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
        END IF;
        IF LAST_INSERT_ID() = 1 THEN                      -- an existing row at version 0
            UPDATE eventfold_streams SET version = 1, updated_at = v_now WHERE stream_id = p_stream_id;
        END IF;
    ELSE
        UPDATE eventfold_streams SET version = LAST_INSERT_ID(version) + 1, updated_at = v_now
        WHERE stream_id = p_stream_id
          AND (version = p_expected_version OR (p_expected_version = -3 AND version > 0));
        IF ROW_COUNT() = 1 THEN
            SET v_current = CAST(LAST_INSERT_ID() AS SIGNED);
        ELSE
            SELECT COALESCE(MAX(version), 0) INTO v_current FROM eventfold_streams WHERE stream_id = p_stream_id;
            SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
        END IF;
    END IF;

    -- The gate (share lock, to COMMIT/ROLLBACK), then the position from AUTO_INCREMENT.
    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
        SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;
    INSERT INTO eventfold_events
        (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    VALUES (p_stream_id, v_current + 1, p_event_id, p_event_type, p_data, p_metadata, v_now);

    IF CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
        SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
    END IF;

    RELEASE SAVEPOINT eventfold_append_call;
    SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS global_position, v_current + 1 AS stream_version, v_now AS recorded_at;
END
-- +goose StatementEnd

-- eventfold_append_batch: the Go library's append of several events or several streams
-- (AppendMany, batched group commit) in one CALL. p_batch is a JSON array of {"s": stream
-- id, "x": expected version, "e": [events as eventfold_append_events takes them]},
-- validated by the library; call it inside a transaction (it refuses a call outside one,
-- 31002, before it writes anything). Each element is checked and its stream row raised in
-- array order (a stream may appear twice), the gate is taken, then the events go in: up to
-- 128 events and 256 KiB one single-row INSERT per event (since 00017), above that in
-- chunks of 2^k - 1 rows. Returns global_position, stream_version, recorded_at per event
-- in batch order. A failure rolls back to its own savepoint and is raised; a refused
-- expectation is 31001 'eventfold: wrong expected version: actual=<n> index=<i>' (i from 0).
-- +goose StatementBegin
CREATE PROCEDURE eventfold_append_batch(
    IN p_batch LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin
)
MODIFIES SQL DATA
SQL SECURITY INVOKER
COMMENT 'eventfold: the Go library''s multi-stream append (validated arguments, inside a transaction)'
BEGIN
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_n       BIGINT;
    DECLARE v_i       BIGINT DEFAULT 0;
    DECLARE v_cnt     BIGINT;
    DECLARE v_exp     BIGINT;
    DECLARE v_current BIGINT;
    DECLARE v_total   BIGINT DEFAULT 0;
    DECLARE v_done    BIGINT DEFAULT 0;
    DECLARE v_chunk   BIGINT;
    DECLARE v_stream  VARBINARY(800);
    DECLARE v_bases   LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT '[';
    DECLARE v_gate    BIGINT;
    DECLARE v_msg     VARCHAR(160);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
    DECLARE v_xa      BOOLEAN DEFAULT FALSE;              -- called inside an XA transaction (00020)
    DECLARE v_j       BIGINT;
    DECLARE v_el      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;  -- one element
    DECLARE v_ev      LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;  -- one event
    DECLARE v_out     LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT '[';
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
    -- Only inside a transaction (the check eventfold_append_events makes: SET TRANSACTION
    -- fails with 1568 while one is active): in autocommit every statement below would
    -- commit on its own, and the savepoint would protect nothing.
    -- MariaDB answers from @@in_transaction (no error raised and caught on every call); MySQL,
    -- which has no such variable and skips MariaDB's executable comment, and MariaDB when
    -- the variable says no, ask with SET TRANSACTION as 00016 did.
    SET v_in_tx = /*M! @@in_transaction = 1 OR */ FALSE;
    IF NOT v_in_tx THEN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
            SET TRANSACTION READ WRITE;
        END;
    END IF;
    IF NOT v_in_tx THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: eventfold_append_batch must be called inside a transaction';
    END IF;
    -- Not inside an XA transaction (00020): MariaDB releases a transaction's share locks at
    -- XA PREPARE, the gate's among them, so readers would prove positions settled past this
    -- append's while its branch waits for XA COMMIT. XA START fails with 1400 inside an
    -- ordinary transaction and with 1399 inside an XA one, and changes nothing either way.
    -- MariaDB only (its executable comment): MySQL skips it.
    BEGIN
        /*M! DECLARE CONTINUE HANDLER FOR 1400 BEGIN END;
        DECLARE CONTINUE HANDLER FOR 1399 SET v_xa = TRUE;
        XA START 'eventfold-probe'; */
    END;
    IF v_xa THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31005,
            MESSAGE_TEXT = 'eventfold: append inside an XA transaction refused (MariaDB drops its gate lock at XA PREPARE)';
    END IF;
    SAVEPOINT eventfold_append_call;

    SET v_n = JSON_LENGTH(p_batch);
    WHILE v_i < v_n DO
        SET v_el = COALESCE(/*M! JSON_QUERY(p_batch, CONCAT('$[', v_i, ']')), */ JSON_EXTRACT(p_batch, CONCAT('$[', v_i, ']')));
        SET v_stream = JSON_UNQUOTE(JSON_EXTRACT(v_el, '$.s'));
        SET v_exp = CAST(JSON_EXTRACT(v_el, '$.x') AS SIGNED);
        SET v_cnt = JSON_LENGTH(v_el, '$.e');
        SET v_current = LAST_INSERT_ID(0);
        SET v_msg = NULL;
        IF v_exp = -1 THEN
            INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (v_stream, v_cnt, v_now)
            ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1 + v_cnt, updated_at = v_now;
            SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
        ELSEIF v_exp IN (-2, 0) THEN
            INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (v_stream, v_cnt, v_now)
            ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1;
            SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
            IF v_current <> 0 THEN
                SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current, ' index=', v_i);
            ELSEIF LAST_INSERT_ID() = 1 THEN
                UPDATE eventfold_streams SET version = v_cnt, updated_at = v_now WHERE stream_id = v_stream;
            END IF;
        ELSE
            UPDATE eventfold_streams SET version = LAST_INSERT_ID(version) + v_cnt, updated_at = v_now
            WHERE stream_id = v_stream
              AND (version = v_exp OR (v_exp = -3 AND version > 0));
            IF ROW_COUNT() = 1 THEN
                SET v_current = CAST(LAST_INSERT_ID() AS SIGNED);
            ELSE
                SELECT COALESCE(MAX(version), 0) INTO v_current FROM eventfold_streams WHERE stream_id = v_stream;
                SET v_msg = CONCAT('eventfold: wrong expected version: actual=', v_current, ' index=', v_i);
            END IF;
        END IF;
        IF v_msg IS NOT NULL THEN
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
        END IF;
        SET v_bases = CONCAT(v_bases, IF(v_i = 0, '', ','), v_current);
        SET v_total = v_total + v_cnt;
        SET v_i = v_i + 1;
    END WHILE;
    SET v_bases = CONCAT(v_bases, ']');

    BEGIN
        DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
        SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;

    -- The events. A small batch (what group commit and most AppendMany calls send) goes in
    -- one single-row INSERT ... VALUES per event: a "simple insert", which takes its
    -- AUTO_INCREMENT value under InnoDB's short latch (an INSERT ... SELECT holds the table's
    -- AUTO-INC lock to the end of the statement in innodb_autoinc_lock_mode 1, so every other
    -- append waited for its JSON_TABLE), reserves exactly one value (no dead position) and
    -- hands it back with LAST_INSERT_ID(), so the result needs no look-up by event id. Each
    -- event is taken from its element by path, which reads the text from the start: above
    -- 128 events or 256 KiB the chunked INSERT ... SELECT of 00015 is cheaper and is kept.
    -- Data and metadata must be stored as sent (MariaDB keeps JSON as text, and the library
    -- returns the text it sent): MariaDB's JSON_EXTRACT re-spaces an object or array, its
    -- JSON_QUERY returns it as written (and NULL for a scalar, which JSON_EXTRACT returns as
    -- written). JSON_QUERY is MariaDB's only: it is written in MariaDB's executable comment
    -- (M! after the comment's opening), which MariaDB runs and MySQL skips (MySQL stores JSON
    -- in a binary form: the text's spacing is not kept there anyway).
    IF v_total <= 128 AND LENGTH(p_batch) <= 262144 THEN
        SET v_i = 0;
        WHILE v_i < v_n DO
            SET v_el = COALESCE(/*M! JSON_QUERY(p_batch, CONCAT('$[', v_i, ']')), */ JSON_EXTRACT(p_batch, CONCAT('$[', v_i, ']')));
            SET v_stream = JSON_UNQUOTE(JSON_EXTRACT(v_el, '$.s'));
            SET v_cnt = JSON_LENGTH(v_el, '$.e');
            SET v_current = CAST(JSON_EXTRACT(v_bases, CONCAT('$[', v_i, ']')) AS SIGNED);
            SET v_j = 0;
            WHILE v_j < v_cnt DO
                SET v_ev = COALESCE(/*M! JSON_QUERY(v_el, CONCAT('$.e[', v_j, ']')), */ JSON_EXTRACT(v_el, CONCAT('$.e[', v_j, ']')));
                SET v_j = v_j + 1;
                INSERT INTO eventfold_events
                    (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
                VALUES (v_stream, v_current + v_j,
                        JSON_UNQUOTE(JSON_EXTRACT(v_ev, '$.id')),
                        JSON_UNQUOTE(JSON_EXTRACT(v_ev, '$.type')),
                        COALESCE(/*M! JSON_QUERY(v_ev, '$.data'), */ JSON_EXTRACT(v_ev, '$.data'), 'null'),
                        COALESCE(/*M! JSON_QUERY(v_ev, '$.metadata'), */ JSON_EXTRACT(v_ev, '$.metadata'), '{}'),
                        v_now);
                IF v_out = '[' AND CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
                    SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
                    SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
                END IF;
                SET v_out = CONCAT(v_out, IF(v_out = '[', '[', ',['), LAST_INSERT_ID(), ',', v_current + v_j, ']');
            END WHILE;
            SET v_i = v_i + 1;
        END WHILE;
        RELEASE SAVEPOINT eventfold_append_call;
        SELECT jt.p AS global_position, jt.v AS stream_version, v_now AS recorded_at
        FROM JSON_TABLE(CONCAT(v_out, ']'), '$[*]' COLUMNS (
                n FOR ORDINALITY,
                p BIGINT PATH '$[0]',
                v BIGINT PATH '$[1]')) AS jt
        ORDER BY jt.n;
    ELSE
        WHILE v_done < v_total DO
            SET v_chunk = 1;
            WHILE v_chunk < 32767 AND v_chunk * 2 + 1 <= v_total - v_done DO
                SET v_chunk = v_chunk * 2 + 1;
            END WHILE;
            INSERT INTO eventfold_events
                (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
            SELECT b.s, b.version, b.id, b.type, b.data, b.metadata, v_now
            FROM (
                SELECT ROW_NUMBER() OVER (ORDER BY jt.sidx, jt.eord) AS rn,
                       jt.s,
                       CAST(JSON_EXTRACT(v_bases, CONCAT('$[', jt.sidx - 1, ']')) AS SIGNED) + jt.eord AS version,
                       jt.id,
                       jt.type,
                       COALESCE(jt.data, 'null') AS data,
                       COALESCE(jt.metadata, '{}') AS metadata
                FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
                        sidx FOR ORDINALITY,
                        s    VARBINARY(800) PATH '$.s',
                        NESTED PATH '$.e[*]' COLUMNS (
                            eord     FOR ORDINALITY,
                            id       VARBINARY(36)  PATH '$.id',
                            type     VARBINARY(800) PATH '$.type',
                            data     JSON           PATH '$.data',
                            metadata JSON           PATH '$.metadata'))) AS jt
                WHERE jt.eord IS NOT NULL
            ) AS b
            WHERE b.rn > v_done AND b.rn <= v_done + v_chunk
            ORDER BY b.rn;
            IF v_done = 0 AND CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN
                SET v_msg = CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
            END IF;
            SET v_done = v_done + v_chunk;
        END WHILE;

        RELEASE SAVEPOINT eventfold_append_call;
        SELECT e.global_position, e.stream_version, e.recorded_at
        FROM JSON_TABLE(p_batch, '$[*]' COLUMNS (
                sidx FOR ORDINALITY,
                NESTED PATH '$.e[*]' COLUMNS (
                    eord FOR ORDINALITY,
                    id   VARBINARY(36) PATH '$.id'))) AS jt
        JOIN eventfold_events AS e ON e.event_id = jt.id
        ORDER BY jt.sidx, jt.eord;
    END IF;
END
-- +goose StatementEnd
