-- eventfold 00005: SQL Server hardening before its first real run.
--
-- Written after a static review (issue 15) and the identifier and reader
-- audit of issue 16; no SQL Server could be run where it was written, so
-- every statement here was checked by reading and by goose's parser only.
--
-- Requirements (this corrects the headers of 00001-00004): SQL Server 2016
-- (13.x) or later, Azure SQL Database or Managed Instance, with database
-- compatibility level 130 or higher. OPENJSON ... WITH needs level 130;
-- nothing in eventfold's migrations or queries needs SQL Server 2017
-- (00002 and 00003 say "2017+"; they need only 2016). The first statement
-- below refuses a lower level with a clear message. On a fresh database
-- below level 130, 00001 itself already fails in CREATE PROCEDURE or at the
-- first append, with an error about OPENJSON (typically "Incorrect syntax
-- near the keyword 'with'" or "Invalid object name 'OPENJSON'"): raise the
-- level (ALTER DATABASE CURRENT SET COMPATIBILITY_LEVEL = 130) and migrate
-- again.
--
-- Corrections to 00001's comments: a rolled-back append leaves no hole in
-- the positions. The counter update rolls back with the events, so the
-- next append takes the same positions again: committed positions are
-- dense. And readers (eventfold's ReadAll) now read the log with
-- READCOMMITTEDLOCK, also under READ_COMMITTED_SNAPSHOT: see "Readers".
--
-- What this changes:
--   1. Identifiers compare byte for byte. SQL Server's = ignores trailing
--      spaces under every collation, Latin1_General_100_BIN2 included, so
--      'pay-X' and 'pay-X ' would be one command id (the second caller
--      gets the first one's events), one subscription, one lease owner.
--      Every identifier column gets a CHECK that refuses a trailing space;
--      with BIN2 (code point comparison: case, accents, normalisation
--      forms and invisible characters all count) equal then means
--      identical. event_type and command_type move from the database's
--      default collation (usually case-insensitive: `esctl stats` merged
--      Deposited and deposited) to BIN2. The CHECKs are added WITH NOCHECK:
--      rows already stored stay readable (a subscription whose name ends
--      in a space can no longer be used from Go, which refuses the name;
--      rename it by hand), new rows are checked. Go refuses the same
--      identifiers with ErrInvalidInput before sending any SQL.
--   2. eventfold.append_events checks what a DBA passes as strictly as the
--      Go side does: "id" must be a JSON string of exactly 36 characters
--      in 8-4-4-4-12 hex form (TRY_CONVERT alone accepted braces and
--      ignored characters beyond the 36th), or absent or null for a new
--      id ({} got a new id silently); "type" must be a JSON string (5 was
--      accepted as "5") that does not end in a space; a key given twice in
--      one event is refused.
--   3. ck_events_data_json admits exactly one JSON value (N'[' + data +
--      N']' admitted "1,2"): data must also parse inside {"v": ...}.
--   4. LOCK_ESCALATION = DISABLE on eventfold.events and eventfold.commands.
--      An append of ~5,000 events (the store allows 10,000), an
--      `esctl archive --batch 5000` or a large PruneCommands took 5,000
--      row locks in one statement, and SQL Server escalated them to a lock
--      on the whole table: every reader and appender waited until commit.
--      Without escalation a statement keeps its row locks (about 100 bytes
--      each: 10,000 events with their two unique indexes are a few MB of
--      lock memory). SQL Server may still escalate under lock-memory
--      pressure; keep appends and archive batches in the low thousands.
--
-- Atomicity (issue 16): called outside a transaction, append_events opens
-- its own before it locks or writes anything and commits it at the end;
-- with XACT_ABORT ON any error or client timeout in between rolls all of
-- it back. A bare EXEC is therefore as atomic as one inside BEGIN/COMMIT:
-- never a stream version without its events, never a position visible
-- before a lower one. (MySQL's procedure was not; this one always was.)
--
-- Readers: positions are taken from the one-row counter, whose row lock
-- is held to commit, so the next appender takes positions only after the
-- previous one has ended. A locking read sees a committed row as soon as
-- its lock is gone, so it cannot see position n+1 before n. A snapshot
-- read (RCSI) sees what the engine counted as committed when the statement
-- began; whether a committer that has released its locks is already in
-- every new snapshot is an engine internal, and on MariaDB it was not
-- (readers skipped events). eventfold's ReadAll and Head therefore read
-- with WITH (READCOMMITTEDLOCK): a reader of the newest events waits for
-- the one append in flight. READ_COMMITTED_SNAPSHOT ON is still
-- recommended: everything else (stream reads, your own queries, the
-- read models) then never waits on an appender.
--
-- Upgrade cost: the ALTER COLUMNs may rewrite event_type and command_type
-- on large tables (run it in a quiet moment); the CHECKs are metadata only.
--
--   goose -dir sql/mssql -table eventfold_goose_version mssql "sqlserver://user:pass@host:1433?database=db" up

-- +goose Up

-- +goose StatementBegin
IF (SELECT compatibility_level FROM sys.databases WHERE database_id = DB_ID()) < 130
    THROW 50000, N'eventfold needs database compatibility level 130 or higher (SQL Server 2016 or later): OPENJSON ... WITH is not available below it. Run ALTER DATABASE CURRENT SET COMPATIBILITY_LEVEL = 130 (or higher), then migrate again.', 1;
-- +goose StatementEnd

ALTER TABLE eventfold.events ALTER COLUMN event_type NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL;

ALTER TABLE eventfold.commands ALTER COLUMN command_type NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL;

-- DATALENGTH counts the trailing spaces that = ignores; RTRIM removes
-- only U+0020, the one character SQL Server pads with.
ALTER TABLE eventfold.streams WITH NOCHECK ADD CONSTRAINT ck_streams_stream_id_exact
    CHECK (DATALENGTH(stream_id) = DATALENGTH(RTRIM(stream_id)));

ALTER TABLE eventfold.events WITH NOCHECK ADD CONSTRAINT ck_events_stream_id_exact
    CHECK (DATALENGTH(stream_id) = DATALENGTH(RTRIM(stream_id)));

ALTER TABLE eventfold.events WITH NOCHECK ADD CONSTRAINT ck_events_event_type_exact
    CHECK (DATALENGTH(event_type) > 0 AND DATALENGTH(event_type) = DATALENGTH(RTRIM(event_type)));

ALTER TABLE eventfold.commands WITH NOCHECK ADD CONSTRAINT ck_commands_command_id_exact
    CHECK (DATALENGTH(command_id) = DATALENGTH(RTRIM(command_id)));

ALTER TABLE eventfold.checkpoints WITH NOCHECK ADD CONSTRAINT ck_checkpoints_name_exact
    CHECK (DATALENGTH(name) = DATALENGTH(RTRIM(name)));

ALTER TABLE eventfold.leases WITH NOCHECK ADD CONSTRAINT ck_leases_name_exact
    CHECK (DATALENGTH(name) = DATALENGTH(RTRIM(name)));

ALTER TABLE eventfold.leases WITH NOCHECK ADD CONSTRAINT ck_leases_owner_exact
    CHECK (DATALENGTH(owner) = DATALENGTH(RTRIM(owner)));

ALTER TABLE eventfold.events DROP CONSTRAINT ck_events_data_json;

-- Exactly one JSON value: "1,2" is valid inside [...] but not after
-- {"v": ...}; "1,"k":2" is valid after {"v": but not inside [...].
ALTER TABLE eventfold.events WITH NOCHECK ADD CONSTRAINT ck_events_data_json
    CHECK (ISJSON(N'[' + data + N']') = 1 AND ISJSON(N'{"v":' + data + N'}') = 1);

ALTER TABLE eventfold.events SET (LOCK_ESCALATION = DISABLE);

ALTER TABLE eventfold.commands SET (LOCK_ESCALATION = DISABLE);

-- eventfold.append_events: parameters, result, errors and transactions as
-- documented in 00001, with the stricter checks of point 2 above. 50001
-- and 50002 leave a caller's transaction open (they are raised with
-- XACT_ABORT OFF, so that a Go caller can roll back to a savepoint): a
-- hand-written call must end its transaction itself, e.g.
--
--   SET XACT_ABORT ON;
--   BEGIN TRY
--       BEGIN TRANSACTION;
--       EXEC eventfold.append_events @stream_id = N'account-42',
--            @expected_version = -2, @events = N'[{"type": "AccountOpened", "data": {}}]';
--       COMMIT TRANSACTION;
--   END TRY
--   BEGIN CATCH
--       IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
--       THROW;
--   END CATCH;
--
-- +goose StatementBegin
ALTER PROCEDURE eventfold.append_events
    -- NVARCHAR(4000), not (200): SQL Server silently truncates an argument
    -- that is longer than its parameter; this way a too-long id is refused.
    @stream_id        NVARCHAR(4000),
    @expected_version BIGINT,
    @events           NVARCHAR(MAX)
AS
BEGIN
    SET NOCOUNT ON;
    -- Any unexpected error rolls the whole transaction back, also on a
    -- client timeout (attention), so a half-done append can never commit
    -- and the position row is never left locked by an orphaned transaction.
    -- The deliberate refusals below (50001, 50002) switch it OFF just
    -- before THROW, when nothing has been written yet: THROW then ends the
    -- batch without rolling back the caller's transaction.
    SET XACT_ABORT ON;

    DECLARE @msg NVARCHAR(2048);
    -- A UUID in its 36-character text form, hex digits in either case.
    DECLARE @hex4 NVARCHAR(100) = REPLICATE(N'[0-9A-Fa-f]', 4);
    DECLARE @uuid NVARCHAR(1000) = @hex4 + @hex4 + N'-' + @hex4 + N'-' + @hex4 + N'-' + @hex4 + N'-' + @hex4 + @hex4 + @hex4;

    -- 1. Check the arguments. Nothing is locked or written yet.
    IF @stream_id IS NULL OR DATALENGTH(@stream_id) = 0
        SET @msg = N'eventfold: invalid input: stream id must not be empty';
    ELSE IF DATALENGTH(@stream_id) > 400
        SET @msg = N'eventfold: invalid input: stream id is longer than 200 characters';
    ELSE IF DATALENGTH(RTRIM(@stream_id)) <> DATALENGTH(@stream_id)
        -- 'a' and 'a ' compare equal in SQL Server: they would share a row.
        SET @msg = N'eventfold: invalid input: stream id must not end with a space';
    ELSE IF @expected_version IS NULL OR @expected_version < -3
        SET @msg = N'eventfold: invalid input: expected version must be -1 (any), -2 (no stream), -3 (stream exists) or a version >= 0';
    ELSE IF ISNULL(ISJSON(@events), 0) = 0
        -- ISJSON is 1 for an object or an array; the next test wants '['.
        SET @msg = N'eventfold: invalid input: events must be a JSON array';
    ELSE IF SUBSTRING(@events, PATINDEX(N'%[^ ' + NCHAR(9) + NCHAR(10) + NCHAR(13) + N']%', @events), 1) <> N'['
        SET @msg = N'eventfold: invalid input: events must be a JSON array';
    ELSE IF NOT EXISTS (SELECT 1 FROM OPENJSON(@events))
        SET @msg = N'eventfold: invalid input: events must contain at least one event';
    ELSE IF EXISTS (SELECT 1 FROM OPENJSON(@events) AS e WHERE e.[type] <> 5)
        SET @msg = N'eventfold: invalid input: every event must be a JSON object';
    ELSE IF EXISTS (
        SELECT 1
        FROM OPENJSON(@events) AS e
        CROSS APPLY OPENJSON(e.[value]) AS j
        GROUP BY e.[key], j.[key]
        HAVING COUNT(*) > 1)
        SET @msg = N'eventfold: invalid input: an event has the same key twice';

    IF @msg IS NOT NULL
    BEGIN
        SET XACT_ABORT OFF;
        THROW 50002, @msg, 1;
    END;

    -- 2. Parse the events into a table variable, in array order. Every
    -- member is read through OPENJSON's key/value/type rows, so that its
    -- JSON type can be checked ([type]: 0 null, 1 string, 2 number,
    -- 3 true/false, 4 array, 5 object). For 4 and 5 [value] is the JSON
    -- text as written; for a string it is the unescaped text.
    DECLARE @batch TABLE (
        ord           BIGINT           NOT NULL PRIMARY KEY,
        event_id_text NVARCHAR(MAX)    NULL,
        id_type       TINYINT          NULL,
        event_id      UNIQUEIDENTIFIER NULL,
        event_type    NVARCHAR(MAX)    NULL,
        type_type     TINYINT          NULL,
        data          NVARCHAR(MAX)    NULL,
        data_type     TINYINT          NULL,
        metadata      NVARCHAR(MAX)    NULL,
        metadata_type TINYINT          NULL
    );

    INSERT INTO @batch (ord, event_id_text, id_type, event_type, type_type, data, data_type, metadata, metadata_type)
    SELECT
        -- [key] is the array index as text: order numerically, not as text.
        ROW_NUMBER() OVER (ORDER BY CAST(e.[key] AS INT)),
        i.[value], i.[type],
        ty.[value], ty.[type],
        d.[value], d.[type],
        m.[value], m.[type]
    FROM OPENJSON(@events) AS e
    OUTER APPLY (
        SELECT j.[value], j.[type] FROM OPENJSON(e.[value]) AS j
        WHERE j.[key] = N'id' COLLATE Latin1_General_100_BIN2
    ) AS i
    OUTER APPLY (
        SELECT j.[value], j.[type] FROM OPENJSON(e.[value]) AS j
        WHERE j.[key] = N'type' COLLATE Latin1_General_100_BIN2
    ) AS ty
    OUTER APPLY (
        SELECT j.[value], j.[type] FROM OPENJSON(e.[value]) AS j
        WHERE j.[key] = N'data' COLLATE Latin1_General_100_BIN2
    ) AS d
    OUTER APPLY (
        SELECT j.[value], j.[type] FROM OPENJSON(e.[value]) AS j
        WHERE j.[key] = N'metadata' COLLATE Latin1_General_100_BIN2
    ) AS m;

    -- An absent or null id gets a new one; a string must be the exact
    -- 36-character form (DATALENGTH, not LEN: LEN ignores trailing
    -- spaces). The BIN2 collation keeps [A-F] to those six letters.
    UPDATE @batch
    SET event_id = CASE
            WHEN id_type IS NULL OR id_type = 0 THEN NEWID()
            WHEN id_type = 1 AND DATALENGTH(event_id_text) = 72
                 AND event_id_text COLLATE Latin1_General_100_BIN2 LIKE @uuid
                THEN TRY_CONVERT(UNIQUEIDENTIFIER, event_id_text)
        END;

    IF EXISTS (SELECT 1 FROM @batch WHERE event_id IS NULL)
        SET @msg = CONCAT(N'eventfold: invalid input: event id is not a UUID string (8-4-4-4-12 hex digits): ',
            (SELECT TOP (1) LEFT(event_id_text, 100) FROM @batch WHERE event_id IS NULL ORDER BY ord));
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE type_type IS NULL OR type_type <> 1 OR DATALENGTH(event_type) = 0 OR DATALENGTH(event_type) > 400)
        SET @msg = N'eventfold: invalid input: every event needs a type: a JSON string of 1 to 200 characters';
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE DATALENGTH(RTRIM(event_type)) <> DATALENGTH(event_type))
        SET @msg = N'eventfold: invalid input: an event type must not end with a space';
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE data_type IS NULL)
        SET @msg = N'eventfold: invalid input: every event needs data (use {} or null for no payload)';
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE metadata_type IS NOT NULL AND metadata_type <> 5)
        SET @msg = N'eventfold: invalid input: metadata must be a JSON object';

    IF @msg IS NOT NULL
    BEGIN
        SET XACT_ABORT OFF;
        THROW 50002, @msg, 1;
    END;

    UPDATE @batch
    SET data = CASE data_type
                   WHEN 0 THEN N'null'
                   WHEN 1 THEN N'"' + STRING_ESCAPE(data, 'json') + N'"'
                   ELSE data
               END,
        metadata = ISNULL(metadata, N'{}');

    DECLARE @n BIGINT = (SELECT COUNT(*) FROM @batch);

    -- 3. Run in the caller's transaction if there is one, else in our own,
    -- opened before anything is locked or written: the position row must
    -- stay locked until the events commit, and a failure must take back
    -- the stream version, the counter and the events together.
    DECLARE @own_tran BIT = 0;
    IF @@TRANCOUNT = 0
    BEGIN
        BEGIN TRANSACTION;
        SET @own_tran = 1;
    END;

    -- 4. Lock the stream and check the expectation. UPDLOCK + HOLDLOCK
    -- keeps the row (or, for a new stream, the key range where it would
    -- go) locked until the transaction ends: concurrent appenders to one
    -- stream, including concurrent creators of a new stream, queue here,
    -- and each sees the version its predecessor committed.
    DECLARE @current BIGINT = 0, @found BIT = 0;
    SELECT @current = s.version, @found = 1
    FROM eventfold.streams AS s WITH (UPDLOCK, HOLDLOCK)
    WHERE s.stream_id = @stream_id;

    IF NOT (@expected_version = -1
            OR (@expected_version = -2 AND @current = 0)
            OR (@expected_version = -3 AND @current > 0)
            OR (@expected_version >= 0 AND @expected_version = @current))
    BEGIN
        SET @msg = CONCAT(N'eventfold: wrong expected version: actual=', @current);
        IF @own_tran = 1
            ROLLBACK TRANSACTION;
        SET XACT_ABORT OFF;
        THROW 50001, @msg, 1;
    END;

    -- 5. Take @n positions. The row lock on eventfold.position is held to
    -- the end of the transaction: the next appender takes its positions
    -- only after this transaction has committed or rolled back (and a
    -- rollback takes the counter back too: no hole).
    DECLARE @last BIGINT, @first BIGINT;
    UPDATE eventfold.position
    SET @last = last_position = last_position + @n
    WHERE id = 1;
    IF @@ROWCOUNT <> 1
        THROW 50003, N'eventfold: the row of eventfold.position is missing', 1;
    SET @first = @last - @n + 1;

    -- 6. Write the events and the stream's new version.
    DECLARE @now DATETIME2(6) = SYSUTCDATETIME();

    INSERT INTO eventfold.events
        (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    SELECT @first + b.ord - 1, @stream_id, @current + b.ord, b.event_id, b.event_type, b.data, b.metadata, @now
    FROM @batch AS b;

    IF @found = 1
        UPDATE eventfold.streams
        SET version = @current + @n, updated_at = @now
        WHERE stream_id = @stream_id;
    ELSE
        INSERT INTO eventfold.streams (stream_id, version, updated_at)
        VALUES (@stream_id, @n, @now);

    -- 7. Report what was recorded.
    SELECT e.global_position, e.stream_version, e.recorded_at
    FROM eventfold.events AS e
    WHERE e.global_position BETWEEN @first AND @last
    ORDER BY e.global_position;

    IF @own_tran = 1
        COMMIT TRANSACTION;
END;
-- +goose StatementEnd

-- +goose Down

-- The procedure as 00001 created it.
-- +goose StatementBegin
ALTER PROCEDURE eventfold.append_events
    -- NVARCHAR(4000), not (200): SQL Server silently truncates an argument
    -- that is longer than its parameter; this way a too-long id is refused.
    @stream_id        NVARCHAR(4000),
    @expected_version BIGINT,
    @events           NVARCHAR(MAX)
AS
BEGIN
    SET NOCOUNT ON;
    -- Any unexpected error rolls the whole transaction back, also on a
    -- client timeout (attention), so a half-done append can never commit
    -- and the position row is never left locked by an orphaned transaction.
    -- The deliberate refusals below (50001, 50002) switch it OFF just
    -- before THROW, when nothing has been written yet: THROW then ends the
    -- batch without rolling back the caller's transaction.
    SET XACT_ABORT ON;

    DECLARE @msg NVARCHAR(2048);

    -- 1. Check the arguments. Nothing is locked or written yet.
    IF @stream_id IS NULL OR DATALENGTH(@stream_id) = 0
        SET @msg = N'eventfold: invalid input: stream id must not be empty';
    ELSE IF DATALENGTH(@stream_id) > 400
        SET @msg = N'eventfold: invalid input: stream id is longer than 200 characters';
    ELSE IF DATALENGTH(RTRIM(@stream_id)) <> DATALENGTH(@stream_id)
        -- 'a' and 'a ' compare equal in SQL Server: they would share a row.
        SET @msg = N'eventfold: invalid input: stream id must not end with a space';
    ELSE IF @expected_version IS NULL OR @expected_version < -3
        SET @msg = N'eventfold: invalid input: expected version must be -1 (any), -2 (no stream), -3 (stream exists) or a version >= 0';
    ELSE IF ISNULL(ISJSON(@events), 0) = 0
        -- ISJSON is 1 for an object or an array; the next test wants '['.
        SET @msg = N'eventfold: invalid input: events must be a JSON array';
    ELSE IF SUBSTRING(@events, PATINDEX(N'%[^ ' + NCHAR(9) + NCHAR(10) + NCHAR(13) + N']%', @events), 1) <> N'['
        SET @msg = N'eventfold: invalid input: events must be a JSON array';
    ELSE IF NOT EXISTS (SELECT 1 FROM OPENJSON(@events))
        SET @msg = N'eventfold: invalid input: events must contain at least one event';
    ELSE IF EXISTS (SELECT 1 FROM OPENJSON(@events) AS e WHERE e.[type] <> 5)
        SET @msg = N'eventfold: invalid input: every event must be a JSON object';

    IF @msg IS NOT NULL
    BEGIN
        SET XACT_ABORT OFF;
        THROW 50002, @msg, 1;
    END;

    -- 2. Parse the events into a table variable, in array order.
    -- data and metadata are read through OPENJSON's key/value/type rows
    -- rather than WITH (... AS JSON): AS JSON yields NULL for scalars, and
    -- data may be any JSON value. [type]: 0 null, 1 string, 2 number,
    -- 3 true/false, 4 array, 5 object. For 4 and 5 [value] is the JSON text
    -- as written; for a string it is the unescaped text, escaped again
    -- below.
    DECLARE @batch TABLE (
        ord           BIGINT           NOT NULL PRIMARY KEY,
        event_id_text NVARCHAR(100)    NULL,
        event_id      UNIQUEIDENTIFIER NULL,
        event_type    NVARCHAR(MAX)    NULL,
        data          NVARCHAR(MAX)    NULL,
        data_type     TINYINT          NULL,
        metadata      NVARCHAR(MAX)    NULL,
        metadata_type TINYINT          NULL
    );

    INSERT INTO @batch (ord, event_id_text, event_id, event_type, data, data_type, metadata, metadata_type)
    SELECT
        -- [key] is the array index as text: order numerically, not as text.
        ROW_NUMBER() OVER (ORDER BY CAST(e.[key] AS INT)),
        f.id,
        CASE WHEN f.id IS NULL THEN NEWID() ELSE TRY_CONVERT(UNIQUEIDENTIFIER, f.id) END,
        f.event_type,
        d.[value],
        d.[type],
        m.[value],
        m.[type]
    FROM OPENJSON(@events) AS e
    CROSS APPLY OPENJSON(e.[value])
        WITH (id NVARCHAR(100) '$.id', event_type NVARCHAR(MAX) '$.type') AS f
    OUTER APPLY (
        SELECT TOP (1) j.[value], j.[type]
        FROM OPENJSON(e.[value]) AS j
        WHERE j.[key] = N'data' COLLATE Latin1_General_100_BIN2
    ) AS d
    OUTER APPLY (
        SELECT TOP (1) j.[value], j.[type]
        FROM OPENJSON(e.[value]) AS j
        WHERE j.[key] = N'metadata' COLLATE Latin1_General_100_BIN2
    ) AS m;

    IF EXISTS (SELECT 1 FROM @batch WHERE event_id IS NULL)
        SET @msg = CONCAT(N'eventfold: invalid input: event id is not a UUID: ',
            (SELECT TOP (1) event_id_text FROM @batch WHERE event_id IS NULL ORDER BY ord));
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE event_type IS NULL OR DATALENGTH(event_type) = 0 OR DATALENGTH(event_type) > 400)
        SET @msg = N'eventfold: invalid input: every event needs a type of 1 to 200 characters';
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE data_type IS NULL)
        SET @msg = N'eventfold: invalid input: every event needs data (use {} or null for no payload)';
    ELSE IF EXISTS (SELECT 1 FROM @batch WHERE metadata_type IS NOT NULL AND metadata_type <> 5)
        SET @msg = N'eventfold: invalid input: metadata must be a JSON object';

    IF @msg IS NOT NULL
    BEGIN
        SET XACT_ABORT OFF;
        THROW 50002, @msg, 1;
    END;

    UPDATE @batch
    SET data = CASE data_type
                   WHEN 0 THEN N'null'
                   WHEN 1 THEN N'"' + STRING_ESCAPE(data, 'json') + N'"'
                   ELSE data
               END,
        metadata = ISNULL(metadata, N'{}');

    DECLARE @n BIGINT = (SELECT COUNT(*) FROM @batch);

    -- 3. Run in the caller's transaction if there is one, else in our own:
    -- the position row must stay locked until the events commit.
    DECLARE @own_tran BIT = 0;
    IF @@TRANCOUNT = 0
    BEGIN
        BEGIN TRANSACTION;
        SET @own_tran = 1;
    END;

    -- 4. Lock the stream and check the expectation. UPDLOCK + HOLDLOCK
    -- keeps the row (or, for a new stream, the key range where it would
    -- go) locked until the transaction ends: concurrent appenders to one
    -- stream, including concurrent creators of a new stream, queue here,
    -- and each sees the version its predecessor committed.
    DECLARE @current BIGINT = 0, @found BIT = 0;
    SELECT @current = s.version, @found = 1
    FROM eventfold.streams AS s WITH (UPDLOCK, HOLDLOCK)
    WHERE s.stream_id = @stream_id;

    IF NOT (@expected_version = -1
            OR (@expected_version = -2 AND @current = 0)
            OR (@expected_version = -3 AND @current > 0)
            OR (@expected_version >= 0 AND @expected_version = @current))
    BEGIN
        SET @msg = CONCAT(N'eventfold: wrong expected version: actual=', @current);
        IF @own_tran = 1
            ROLLBACK TRANSACTION;
        SET XACT_ABORT OFF;
        THROW 50001, @msg, 1;
    END;

    -- 5. Take @n positions. The row lock on eventfold.position is held to
    -- the end of the transaction: this is what makes positions commit in
    -- order (see the top of this file).
    DECLARE @last BIGINT, @first BIGINT;
    UPDATE eventfold.position
    SET @last = last_position = last_position + @n
    WHERE id = 1;
    IF @@ROWCOUNT <> 1
        THROW 50003, N'eventfold: the row of eventfold.position is missing', 1;
    SET @first = @last - @n + 1;

    -- 6. Write the events and the stream's new version.
    DECLARE @now DATETIME2(6) = SYSUTCDATETIME();

    INSERT INTO eventfold.events
        (global_position, stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
    SELECT @first + b.ord - 1, @stream_id, @current + b.ord, b.event_id, b.event_type, b.data, b.metadata, @now
    FROM @batch AS b;

    IF @found = 1
        UPDATE eventfold.streams
        SET version = @current + @n, updated_at = @now
        WHERE stream_id = @stream_id;
    ELSE
        INSERT INTO eventfold.streams (stream_id, version, updated_at)
        VALUES (@stream_id, @n, @now);

    -- 7. Report what was recorded.
    SELECT e.global_position, e.stream_version, e.recorded_at
    FROM eventfold.events AS e
    WHERE e.global_position BETWEEN @first AND @last
    ORDER BY e.global_position;

    IF @own_tran = 1
        COMMIT TRANSACTION;
END;
-- +goose StatementEnd

ALTER TABLE eventfold.commands SET (LOCK_ESCALATION = TABLE);

ALTER TABLE eventfold.events SET (LOCK_ESCALATION = TABLE);

ALTER TABLE eventfold.events DROP CONSTRAINT ck_events_data_json;

ALTER TABLE eventfold.events WITH NOCHECK ADD CONSTRAINT ck_events_data_json
    CHECK (ISJSON(N'[' + data + N']') = 1);

ALTER TABLE eventfold.leases DROP CONSTRAINT ck_leases_owner_exact;

ALTER TABLE eventfold.leases DROP CONSTRAINT ck_leases_name_exact;

ALTER TABLE eventfold.checkpoints DROP CONSTRAINT ck_checkpoints_name_exact;

ALTER TABLE eventfold.commands DROP CONSTRAINT ck_commands_command_id_exact;

ALTER TABLE eventfold.events DROP CONSTRAINT ck_events_event_type_exact;

ALTER TABLE eventfold.events DROP CONSTRAINT ck_events_stream_id_exact;

ALTER TABLE eventfold.streams DROP CONSTRAINT ck_streams_stream_id_exact;

-- Back to the database's default collation, as 00001 and 00002 made them.
ALTER TABLE eventfold.commands ALTER COLUMN command_type NVARCHAR(200) NOT NULL;

ALTER TABLE eventfold.events ALTER COLUMN event_type NVARCHAR(200) NOT NULL;
