CREATE PROCEDURE lean_one(
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
    -- Every DECLARE and SET is an instruction the server runs on each CALL: only what the
    -- successful path needs is declared here; the error paths declare their own.
    DECLARE v_now     DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
    DECLARE v_current BIGINT DEFAULT LAST_INSERT_ID(0);   -- stream version before the append
    DECLARE v_gate    BIGINT;                             -- the position floor, read with the gate
    DECLARE EXIT HANDLER FOR SQLEXCEPTION
    BEGIN
        BEGIN
            DECLARE CONTINUE HANDLER FOR 1305 BEGIN END;  -- a deadlock took the savepoint too
            ROLLBACK TO SAVEPOINT eventfold_append_call;
        END;
        RESIGNAL;
    END;
    -- Only inside a transaction. MariaDB answers from @@in_transaction in one test; MySQL, which
    -- has no such variable and skips MariaDB's executable comment, asks with SET TRANSACTION
    -- (1568 inside a transaction), as 00016 did.
    IF /*M! @@in_transaction = 0 AND */ TRUE THEN
        BEGIN
            DECLARE v_in_tx BOOLEAN DEFAULT FALSE;
            BEGIN
                DECLARE CONTINUE HANDLER FOR 1568 SET v_in_tx = TRUE;
                SET TRANSACTION READ WRITE;
            END;
            IF NOT v_in_tx THEN
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002,
                    MESSAGE_TEXT = 'eventfold: eventfold_append_one must be called inside a transaction';
            END IF;
        END;
    END IF;
    SAVEPOINT eventfold_append_call;

    -- The stream row: locked, checked and raised in as few statements as the expectation
    -- allows. LAST_INSERT_ID(version + 1) hands the version the row had back to this session
    -- (0 stays when the INSERT created the row), whatever the client's found-rows flag.
    IF p_expected_version = -1 THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
        ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1), updated_at = v_now;
        SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
    ELSEIF p_expected_version IN (-2, 0) THEN
        INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
        ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1) - 1;
        SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
        IF v_current <> 0 THEN
            BEGIN
                DECLARE v_msg VARCHAR(128) DEFAULT CONCAT('eventfold: wrong expected version: actual=', v_current);
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
            END;
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
            BEGIN
                DECLARE v_msg VARCHAR(128) DEFAULT CONCAT('eventfold: wrong expected version: actual=', v_current);
                SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31001, MESSAGE_TEXT = v_msg;
            END;
        END IF;
    END IF;

    -- The gate (share lock, to COMMIT/ROLLBACK) and the floor, then the position from
    -- AUTO_INCREMENT.
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
        BEGIN
            DECLARE v_msg VARCHAR(128) DEFAULT CONCAT('eventfold: positions behind: position ', LAST_INSERT_ID(), ' is not above ', v_gate);
            SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = v_msg;
        END;
    END IF;

    -- No RELEASE SAVEPOINT: COMMIT and ROLLBACK drop it, and the next CALL's SAVEPOINT of the
    -- same name replaces it.
    SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS global_position, v_current + 1 AS stream_version, v_now AS recorded_at;
END
