-- eventfold 00016: a Down below 00015 never hands out a position again, for MySQL 8.0.19+
-- and MariaDB 10.6+.
--
-- Since 00015 positions come from AUTO_INCREMENT and the eventfold_position row is a gate:
-- its last_position keeps the value it had when 00015 ran. 00015's Down restores the
-- counter from the highest event in eventfold_events only, so positions handed out since
-- 00015 and archived away since (esctl archive deletes them below the archive watermark),
-- above every event left, would be handed out again by the counter: two events, one
-- position, for a reader that had delivered the archived one. 00015 is released and is not
-- edited; this migration's Down, which runs just before 00015's, raises the counter above
-- every position handed out:
--   * every event still in the log;
--   * the archive watermark (every position below it may have been archived);
--   * the table's AUTO_INCREMENT (every position allocated, dead ones included; MySQL 8 may
--     show a cached, lower value in information_schema, never a higher one).
-- 00015's Down then keeps that value (it takes the greater of the counter and the log).
--
-- Up also makes eventfold_append_one and eventfold_append_batch (the Go library's
-- procedures, always called inside its transaction) refuse a call outside a transaction
-- before writing anything (31002; eventfold_append_events, the DBA's procedure, makes the same
-- check and opens a transaction of its own instead): in autocommit 00015's versions committed
-- each statement on its own, so a failure half-wrote (a duplicate event id in a batch left
-- its streams raised) and a success reported 1305 (no savepoint) after committing. Down restores 00015's versions.
--
-- Otherwise Up changes nothing: the migration gives the way down its floor. A database taken
-- down to 00015 (and no further) keeps the floor too; appends made at 00015 after that are
-- covered when 00015's own Down runs only as far as they are still in the log.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up

-- +goose Up
DROP PROCEDURE IF EXISTS eventfold_append_one;
DROP PROCEDURE IF EXISTS eventfold_append_batch;

-- eventfold_append_one: the Go library's append of a single event (one CALL, no JSON to
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
    DECLARE v_gate    TINYINT;
    DECLARE v_msg     VARCHAR(128);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
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
    BEGIN
        DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
        SET TRANSACTION READ WRITE;
    END;
    IF NOT v_in_tx THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: eventfold_append_one must be called inside a transaction';
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
        SELECT id INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;
    INSERT INTO eventfold_events
        (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    VALUES (p_stream_id, v_current + 1, p_event_id, p_event_type, p_data, p_metadata, v_now);

    RELEASE SAVEPOINT eventfold_append_call;
    SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS global_position, v_current + 1 AS stream_version, v_now AS recorded_at;
END
-- +goose StatementEnd

-- eventfold_append_batch: the Go library's append of several events or several streams
-- (AppendMany) in one CALL. p_batch is a JSON array of {"s": stream id, "x": expected
-- version, "e": [events as eventfold_append_events takes them]}, validated by the library;
-- call it inside a transaction (since 00016 it refuses a call outside one, 31002, before it
-- writes anything). Each element is checked and its stream row raised in array
-- order (a stream may appear twice), then all events go in with as few INSERTs as leave no
-- auto-increment value unused (chunks of 2^k - 1 rows). Returns global_position,
-- stream_version, recorded_at per event in batch order. A failure rolls back to its own
-- savepoint and is raised; a refused expectation is 31001 'eventfold: wrong expected
-- version: actual=<n> index=<i>' (i from 0).
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
    DECLARE v_gate    TINYINT;
    DECLARE v_msg     VARCHAR(160);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
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
    BEGIN
        DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
        SET TRANSACTION READ WRITE;
    END;
    IF NOT v_in_tx THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
            MESSAGE_TEXT = 'eventfold: eventfold_append_batch must be called inside a transaction';
    END IF;
    SAVEPOINT eventfold_append_call;

    SET v_n = JSON_LENGTH(p_batch);
    WHILE v_i < v_n DO
        SET v_stream = JSON_UNQUOTE(JSON_EXTRACT(p_batch, CONCAT('$[', v_i, '].s')));
        SET v_exp = CAST(JSON_EXTRACT(p_batch, CONCAT('$[', v_i, '].x')) AS SIGNED);
        SET v_cnt = JSON_LENGTH(p_batch, CONCAT('$[', v_i, '].e'));
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
        SELECT id INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;

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
END
-- +goose StatementEnd

-- +goose Down
DROP PROCEDURE IF EXISTS eventfold_append_one;
DROP PROCEDURE IF EXISTS eventfold_append_batch;

-- eventfold_append_one: the Go library's append of a single event (one CALL, no JSON to
-- parse). Not for hand-written SQL: it trusts its arguments (the library has validated the
-- stream id, the event id, the type and the JSON before any SQL; the table's constraints
-- still refuse what does not fit) and must be called inside a transaction. A failure rolls
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
    DECLARE v_gate    TINYINT;
    DECLARE v_msg     VARCHAR(128);
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;  -- a deadlock took the savepoint too
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
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
        SELECT id INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;
    INSERT INTO eventfold_events
        (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    VALUES (p_stream_id, v_current + 1, p_event_id, p_event_type, p_data, p_metadata, v_now);

    RELEASE SAVEPOINT eventfold_append_call;
    SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS global_position, v_current + 1 AS stream_version, v_now AS recorded_at;
END
-- +goose StatementEnd

-- eventfold_append_batch: the Go library's append of several events or several streams
-- (AppendMany) in one CALL. p_batch is a JSON array of {"s": stream id, "x": expected
-- version, "e": [events as eventfold_append_events takes them]}, validated by the library;
-- call it inside a transaction. Each element is checked and its stream row raised in array
-- order (a stream may appear twice), then all events go in with as few INSERTs as leave no
-- auto-increment value unused (chunks of 2^k - 1 rows). Returns global_position,
-- stream_version, recorded_at per event in batch order. A failure rolls back to its own
-- savepoint and is raised; a refused expectation is 31001 'eventfold: wrong expected
-- version: actual=<n> index=<i>' (i from 0).
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
    DECLARE v_gate    TINYINT;
    DECLARE v_msg     VARCHAR(160);
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
    SAVEPOINT eventfold_append_call;

    SET v_n = JSON_LENGTH(p_batch);
    WHILE v_i < v_n DO
        SET v_stream = JSON_UNQUOTE(JSON_EXTRACT(p_batch, CONCAT('$[', v_i, '].s')));
        SET v_exp = CAST(JSON_EXTRACT(p_batch, CONCAT('$[', v_i, '].x')) AS SIGNED);
        SET v_cnt = JSON_LENGTH(p_batch, CONCAT('$[', v_i, '].e'));
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
        SELECT id INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
    END;
    IF v_gate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003,
            MESSAGE_TEXT = 'eventfold: eventfold_position has no row 1';
    END IF;

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
END
-- +goose StatementEnd

UPDATE eventfold_position
SET last_position = GREATEST(last_position,
    (SELECT COALESCE(MAX(global_position), 0) FROM eventfold_events),
    (SELECT COALESCE(MAX(archived_before), 1) - 1 FROM eventfold_archive_watermark),
    (SELECT COALESCE(MAX(AUTO_INCREMENT), 1) - 1 FROM information_schema.TABLES
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'eventfold_events'))
WHERE id = 1;
