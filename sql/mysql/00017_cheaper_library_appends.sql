-- eventfold 00017: the library's appends cost the server less, for MySQL 8.0.19+ and
-- MariaDB 10.6+: a small batch append no longer holds the events table's AUTO-INC lock, and
-- on MariaDB neither procedure raises and catches an error on every call.
--
-- eventfold_append_batch (the Go library's procedure for AppendMany and for batched group
-- commit) inserted its events with INSERT ... SELECT FROM JSON_TABLE, numbered by a window
-- function, in chunks of 2^k - 1 rows (00015), and read its results back by event id.
-- Server CPU of the connection's own thread on MariaDB 10.11 (2026-12-01, machine at load
-- average 17-30 from other work, so compare within a row only), one event per stream,
-- fresh streams, 800 CALLs each, two interleaved rounds, 00016 against 00017, µs per CALL:
--     1 event: 2,363 and 2,438 against 1,750 and 1,250
--     2 events: 3,163 and 3,250 against 2,163 and 1,163
--     4 events: 3,325 and 3,638 against 1,813 and 1,588
--     16 events: 5,400 and 5,425 against 3,013 and 2,663
-- (eventfold_append_one: 1,163 and 1,250.) So a batch of one or two, what group commit
-- mostly sends at 16 clients (it committed 2.0-2.2 commands per transaction in
-- `esctl bench --group-commit`), cost more per event than one append per transaction, and
-- batched group commit ran slower than plain dispatch. Most of it was the INSERT ... SELECT
-- (its derived table, window function and temporary tables; with innodb_autoinc_lock_mode
-- 1, MariaDB's default, such a "bulk insert" also holds the table's AUTO-INC lock to the end
-- of the statement, though sampling INNODB_LOCK_WAITS every 150 ms caught no wait on it).
--
-- Now, up to 128 events and 256 KiB of argument, each event goes in with a single-row
-- INSERT ... VALUES (a "simple insert": its AUTO_INCREMENT value comes from a short latch,
-- exactly one value is reserved, so no dead position, and LAST_INSERT_ID() returns it), and
-- the result rows come from those values instead of a look-up by event id. Larger batches
-- keep the chunked INSERT ... SELECT (picking events by path reads the text from its start
-- each time). Each element is read once per pass instead of three times.
--
-- Both eventfold_append_one and eventfold_append_batch refuse a call outside a transaction
-- (00016). They asked with SET TRANSACTION READ WRITE, which inside a transaction fails with
-- 1568, caught by a handler: an error raised on every call. On MariaDB they now read
-- @@in_transaction first (the flag 1568 is raised from) and ask with SET TRANSACTION only
-- when it says no; MySQL 8 has no @@in_transaction and skips the expression (it is written
-- in MariaDB's executable comment) and asks as before. Server CPU of eventfold_append_one
-- (same measurement, 1,500 calls, two rounds, the old check against the new one alone):
-- 1,433 and 1,133 µs per CALL against 913 and 1,007; in the 800-call rounds above the
-- whole of 00017's eventfold_append_one measured 1,300 and 1,163 (within the noise).
--
-- Nothing else changes: arguments, results, errors, the gate (taken before the first
-- position is allocated, held to COMMIT/ROLLBACK), positions ascending in batch order,
-- versions, the refusal outside a transaction and the savepoint. eventfold_append_events,
-- the DBA's procedure, is untouched.
--
-- Apply with the stock goose CLI:
--   goose -dir sql/mysql -table eventfold_goose_version mysql "user:pass@tcp(host:3306)/db?parseTime=true" up
--
-- Down restores 00016's eventfold_append_one and eventfold_append_batch.

-- +goose Up
DROP PROCEDURE IF EXISTS eventfold_append_one;
DROP PROCEDURE IF EXISTS eventfold_append_batch;

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
    DECLARE v_gate    TINYINT;
    DECLARE v_msg     VARCHAR(160);
    DECLARE v_in_tx   BOOLEAN DEFAULT FALSE;
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
        SELECT id INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE;
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
