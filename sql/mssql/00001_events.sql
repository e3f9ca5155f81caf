-- eventfold 00001: the event log on SQL Server.
--
-- Requires SQL Server 2016 or later (Azure SQL Database and Managed Instance
-- included) with database compatibility level 130 or higher: OPENJSON,
-- ISJSON, STRING_ESCAPE and DROP ... IF EXISTS need it.
--
-- What this creates, all in schema eventfold:
--   eventfold.streams         one row per stream: its current version
--   eventfold.events          the log itself, clustered on global_position
--   eventfold.position        one row: the last global position handed out
--   eventfold.append_events   the only supported way to write to the log
--
-- How global positions stay gap-free for readers: append_events takes its
-- positions by updating the single row of eventfold.position. That row stays
-- exclusively locked until the appending transaction ends, so the next
-- appender cannot take positions before the previous one has committed or
-- rolled back. Positions therefore become visible in order, and a reader
-- that continues from "last position seen + 1" never skips an event that
-- commits late. The price: appends to all streams serialise, from the
-- position update to the commit. Keep transactions that append short.
-- Rolled-back appends leave holes in the numbering; holes are never filled.
--
-- Readers: under the default locking READ COMMITTED a reader of the newest
-- events waits for the appender that holds the position row to finish.
-- With READ_COMMITTED_SNAPSHOT ON it does not wait; both are gap-free.
--
-- Apply with the stock goose CLI (keep eventfold's own version table):
--   goose -dir sql/mssql -table eventfold_goose_version mssql "$DSN" up
-- goose runs every statement below as a batch of its own, so there is no
-- GO separator in this file.

-- +goose Up

-- CREATE SCHEMA must be the first statement of its batch. The schema is
-- owned by whoever runs the migration (usually dbo); all eventfold objects
-- share that owner, so callers need only EXECUTE on append_events and
-- SELECT on the tables (ownership chaining does the rest).
-- +goose StatementBegin
CREATE SCHEMA eventfold;
-- +goose StatementEnd

-- Stream ids are compared byte for byte (BIN2: case- and accent-sensitive),
-- the same as on every other database eventfold supports. Note that SQL
-- Server ignores trailing spaces when it compares strings, whatever the
-- collation, so append_events refuses stream ids that end in a space.
CREATE TABLE eventfold.streams (
    stream_id  NVARCHAR(200) COLLATE Latin1_General_100_BIN2 NOT NULL
        CONSTRAINT pk_streams PRIMARY KEY CLUSTERED,
    -- Number of events in the stream: the stream_version of its last event.
    version    BIGINT        NOT NULL
        CONSTRAINT ck_streams_version CHECK (version >= 0),
    updated_at DATETIME2(6)  NOT NULL
        CONSTRAINT df_streams_updated_at DEFAULT SYSUTCDATETIME()
);

-- The constraint names below are part of eventfold's contract: the Go code
-- tells a duplicate event id (uq_events_event_id) from a lost race on a
-- stream version (uq_events_stream_version) by them. Do not rename them.
CREATE TABLE eventfold.events (
    -- Assigned by append_events from eventfold.position, never by IDENTITY
    -- (an IDENTITY value is taken at insert but visible only at commit, so
    -- values would become visible out of order).
    global_position BIGINT           NOT NULL
        CONSTRAINT pk_events PRIMARY KEY CLUSTERED,
    stream_id       NVARCHAR(200)    COLLATE Latin1_General_100_BIN2 NOT NULL,
    -- 1-based, dense within a stream.
    stream_version  BIGINT           NOT NULL
        CONSTRAINT ck_events_stream_version CHECK (stream_version >= 1),
    event_id        UNIQUEIDENTIFIER NOT NULL
        CONSTRAINT uq_events_event_id UNIQUE NONCLUSTERED,
    event_type      NVARCHAR(200)    NOT NULL,
    -- Any JSON value. ISJSON without a type argument accepts only objects
    -- and arrays before SQL Server 2022, so the check wraps the value in an
    -- array to admit scalars (null, 42, "text") as well.
    data            NVARCHAR(MAX)    NOT NULL
        CONSTRAINT ck_events_data_json CHECK (ISJSON(N'[' + data + N']') = 1),
    -- Always a JSON object ({} when the appender gave none).
    metadata        NVARCHAR(MAX)    NOT NULL
        CONSTRAINT df_events_metadata DEFAULT N'{}'
        CONSTRAINT ck_events_metadata_object CHECK (ISJSON(metadata) = 1 AND LEFT(LTRIM(metadata), 1) = N'{'),
    -- UTC.
    recorded_at     DATETIME2(6)     NOT NULL
        CONSTRAINT df_events_recorded_at DEFAULT SYSUTCDATETIME(),
    -- Serves stream reads (seek on stream_id, ordered by version) and is the
    -- last line of defence against two appends taking the same version.
    CONSTRAINT uq_events_stream_version UNIQUE NONCLUSTERED (stream_id, stream_version)
);

-- The position counter: exactly one row (id = 1).
CREATE TABLE eventfold.position (
    id            TINYINT NOT NULL
        CONSTRAINT pk_position PRIMARY KEY CLUSTERED
        CONSTRAINT ck_position_single_row CHECK (id = 1),
    last_position BIGINT  NOT NULL
        CONSTRAINT ck_position_last_position CHECK (last_position >= 0)
);

INSERT INTO eventfold.position (id, last_position) VALUES (1, 0);

-- eventfold.append_events appends events to one stream after checking the
-- stream's version, and returns one row per event: global_position,
-- stream_version, recorded_at, in position order.
--
-- Parameters
--   @stream_id         the stream; 1 to 200 characters, no trailing space.
--   @expected_version  -1 any version; -2 the stream must not exist;
--                      -3 the stream must exist; n >= 0 the stream must be
--                      at exactly version n (0 = must not exist).
--   @events            a JSON array, one object per event, in order:
--                        "id"        UUID text; optional (NEWID() if absent)
--                        "type"      event type, 1 to 200 characters
--                        "data"      any JSON value, embedded as JSON
--                        "metadata"  a JSON object; optional ({} if absent)
--
-- Errors
--   50001 'eventfold: wrong expected version: actual=<n>'  (n: the stream's
--         current version, 0 when it does not exist)
--   50002 'eventfold: invalid input: ...'                  (bad parameters)
--   2627  on uq_events_event_id: an event id is already in the log.
--   1205 (deadlock victim), 1222 (lock timeout), 3960 (snapshot update
--         conflict): transient, the append may be retried.
--
-- Transactions: call it inside your own transaction to make the append part
-- of it (the events commit or roll back with your work); called outside
-- one it runs in a transaction of its own. The position row stays locked
-- until the outermost transaction ends, so commit promptly.
-- Errors 50001 and 50002 are raised before anything is written and leave
-- the caller's transaction open and usable (roll back to a savepoint, or
-- carry on). Any other error rolls the whole transaction back
-- (XACT_ABORT ON), as SQL Server does for most errors in practice.
--
-- Worked example (a DBA recording two events by hand):
--
--   DECLARE @events NVARCHAR(MAX) = N'[
--     {"id": "0190f5a2-6c1e-7b3a-9d2e-4f5a6b7c8d90",
--      "type": "AccountOpened",
--      "data": {"owner": "Ada", "currency": "EUR"},
--      "metadata": {"actor": "dba", "reason": "ticket 4711"}},
--     {"type": "MoneyDeposited", "data": {"amount": 100}}
--   ]';
--   BEGIN TRANSACTION;
--   EXEC eventfold.append_events
--        @stream_id        = N'account-42',
--        @expected_version = -2,          -- the stream must be new
--        @events           = @events;
--   -- returns:  global_position  stream_version  recorded_at
--   --           1                1               2026-11-26 12:00:00.000000
--   --           2                2               2026-11-26 12:00:00.000000
--   COMMIT TRANSACTION;
--
-- +goose StatementBegin
CREATE PROCEDURE eventfold.append_events
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

-- +goose Down

DROP PROCEDURE IF EXISTS eventfold.append_events;
DROP TABLE IF EXISTS eventfold.events;
DROP TABLE IF EXISTS eventfold.streams;
DROP TABLE IF EXISTS eventfold.position;
-- Fails if anything else still lives in schema eventfold (later eventfold
-- migrations drop their objects before this one runs).
DROP SCHEMA IF EXISTS eventfold;
