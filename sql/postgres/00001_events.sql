-- eventfold 00001: the event log for PostgreSQL (13+; uses xid8 functions).
--
-- What this creates, all inside schema "eventfold":
--   eventfold.streams        one row per stream: its current version. The row
--                            lock on it is what serialises appends to ONE stream.
--   eventfold.events         the append-only log, one row per event.
--   eventfold.append_events  the only supported way to write to the log: checks
--                            the expected version and assigns versions/positions.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up
--
-- How global positions work (read this before tuning anything):
--   global_position = (top-level transaction id << 20) + index within that
--   transaction. Readers of the whole log only look below
--   pg_snapshot_xmin(pg_current_snapshot()) << 20: every transaction below the
--   snapshot's xmin has finished, and any transaction that finishes later has
--   an xid >= xmin, hence larger positions. So a reader that continues from
--   "last position + 1" never skips an event that commits late, with no
--   write-path serialisation. The price: any long-running transaction that
--   holds an xid (in ANY database of this cluster) holds readers back. That is
--   lag, never loss; watch pg_stat_activity.backend_xid age if readers stall.
--   Positions are unique and increasing but not dense (rolled-back
--   transactions leave holes); stream versions are dense.

-- +goose Up

-- IF NOT EXISTS lets a DBA create the schema beforehand with the owner and
-- grants of their choosing.
CREATE SCHEMA IF NOT EXISTS eventfold;

COMMENT ON SCHEMA eventfold IS 'eventfold event store (managed by goose migrations, version table eventfold_goose_version)';

CREATE TABLE eventfold.streams (
    -- Case-sensitive, byte-wise: "C" collation makes equality and ordering
    -- independent of the database's locale.
    stream_id  text COLLATE "C" NOT NULL,
    -- Version of the stream's last event; 0 only transiently while
    -- append_events creates the stream inside its own transaction.
    version    bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT streams_pkey PRIMARY KEY (stream_id),
    CONSTRAINT streams_stream_id_length CHECK (octet_length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT streams_version_nonnegative CHECK (version >= 0)
);

COMMENT ON TABLE eventfold.streams IS 'One row per stream with its current version; append_events upserts it (INSERT ... ON CONFLICT DO UPDATE), which locks the row and so serialises appends to that stream.';

CREATE TABLE eventfold.events (
    -- (xid << 20) + index in transaction; see the header of this file.
    global_position bigint      NOT NULL,
    stream_id       text COLLATE "C" NOT NULL,
    -- 1-based, dense within a stream.
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    -- Transaction start time (now()), so all events of one append share it.
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_pkey PRIMARY KEY (global_position),
    -- The Go code maps a violation of this constraint to ErrDuplicateEventID:
    -- keep its name if you ever rebuild it.
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    -- Serves stream reads; also a safety net behind the stream row lock (the
    -- Go code maps a violation to a wrong-expected-version error).
    CONSTRAINT events_stream_id_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_global_position_positive CHECK (global_position > 0),
    CONSTRAINT events_stream_id_length CHECK (octet_length(stream_id) BETWEEN 1 AND 200),
    CONSTRAINT events_stream_version_positive CHECK (stream_version >= 1),
    CONSTRAINT events_event_type_length CHECK (octet_length(event_type) BETWEEN 1 AND 200),
    CONSTRAINT events_metadata_is_object CHECK (jsonb_typeof(metadata) = 'object')
);

COMMENT ON TABLE eventfold.events IS 'The append-only event log. Write only through eventfold.append_events; read the whole log only below the snapshot horizon (see the migration file header).';
COMMENT ON COLUMN eventfold.events.global_position IS '(top-level xid << 20) + index within the transaction: unique, increasing, not dense.';

-- eventfold.append_events appends events to one stream, atomically.
--
-- p_expected_version: -1 any, -2 the stream must not exist, -3 the stream must
-- exist, n >= 0 the stream must be exactly at version n (0 = must not exist).
-- The four arrays are parallel: element i of each describes event i.
--
-- Errors (SQLSTATE):
--   EF001  wrong expected version; DETAIL holds the actual version (0 = no stream)
--   23505  unique violation: constraint events_event_id_key = duplicate event id
--   22023  bad arguments (array lengths differ, empty, NULL)
--   54000  more than 2^20 events in one transaction
--
-- Worked example, from psql (each call in its own transaction here):
--
--   SELECT * FROM eventfold.append_events(
--       'account-42',                 -- stream id
--       -2,                           -- expected version: no stream yet
--       ARRAY['0190a6a4-5b8e-7c3e-9f4a-2b1c3d4e5f60']::uuid[],
--       ARRAY['AccountOpened'],
--       ARRAY['{"owner": "Ada"}']::jsonb[],
--       ARRAY['{"correlation_id": "req-1"}']::jsonb[]);
--
--    global_position | stream_version |          recorded_at
--   -----------------+----------------+-------------------------------
--          772800512 |              1 | 2026-11-26 12:23:01.009790+00
--   (772800512 = xid 737 << 20, first event of that transaction)
--
--   -- append two more, only if the stream is still at version 1:
--   SELECT * FROM eventfold.append_events('account-42', 1,
--       ARRAY[gen_random_uuid(), gen_random_uuid()],
--       ARRAY['MoneyDeposited', 'MoneyWithdrawn'],
--       ARRAY['{"amount": 100}', '{"amount": 30}']::jsonb[],
--       ARRAY['{}', '{}']::jsonb[]);

-- +goose StatementBegin
CREATE FUNCTION eventfold.append_events(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_data             jsonb[],
    p_metadata         jsonb[]
) RETURNS TABLE (global_position bigint, stream_version bigint, recorded_at timestamptz)
LANGUAGE plpgsql
AS $$
-- The OUT columns share names with table columns; inside SQL statements a
-- bare name means the table column.
#variable_conflict use_column
DECLARE
    -- 2^20 positions per transaction (bits below the transaction id).
    c_slot_size constant bigint := 1048576;
    v_count   int;
    v_current bigint;
    v_base    bigint;
    v_next    bigint;
BEGIN
    IF p_stream_id IS NULL OR p_expected_version IS NULL THEN
        RAISE EXCEPTION 'eventfold.append_events: stream id and expected version must not be NULL'
            USING ERRCODE = '22023';
    END IF;
    IF p_expected_version < -3 THEN
        RAISE EXCEPTION 'eventfold.append_events: expected version % is not -1 (any), -2 (no stream), -3 (stream exists) or a version >= 0', p_expected_version
            USING ERRCODE = '22023';
    END IF;

    v_count := coalesce(cardinality(p_event_ids), 0);
    IF v_count = 0 THEN
        RAISE EXCEPTION 'eventfold.append_events: no events to append (p_event_ids is empty)'
            USING ERRCODE = '22023';
    END IF;
    IF coalesce(cardinality(p_types), 0) <> v_count
       OR coalesce(cardinality(p_data), 0) <> v_count
       OR coalesce(cardinality(p_metadata), 0) <> v_count THEN
        RAISE EXCEPTION 'eventfold.append_events: array lengths differ: % event ids, % types, % data, % metadata',
                v_count, coalesce(cardinality(p_types), 0), coalesce(cardinality(p_data), 0), coalesce(cardinality(p_metadata), 0)
            USING ERRCODE = '22023';
    END IF;

    -- One statement creates or locks the stream row and advances its
    -- version: concurrent appends to this stream wait here until we commit
    -- (a concurrent creator's insert too), then see the version we wrote.
    -- If the expectation below fails, the RAISE undoes this write with the
    -- rest of the statement. One row write instead of read, insert, update.
    INSERT INTO eventfold.streams AS s (stream_id, version)
    VALUES (p_stream_id, v_count)
    ON CONFLICT (stream_id) DO UPDATE
       SET version = s.version + EXCLUDED.version, updated_at = now()
    RETURNING s.version - v_count INTO v_current;

    IF NOT (p_expected_version = -1
            OR (p_expected_version = -2 AND v_current = 0)
            OR (p_expected_version = -3 AND v_current > 0)
            OR (p_expected_version >= 0 AND v_current = p_expected_version)) THEN
        RAISE EXCEPTION 'eventfold: wrong expected version for stream "%": expected %, actual %',
                p_stream_id,
                CASE p_expected_version WHEN -1 THEN 'any' WHEN -2 THEN 'no-stream' WHEN -3 THEN 'exists'
                     ELSE p_expected_version::text END,
                v_current
            USING ERRCODE = 'EF001', DETAIL = v_current::text;
    END IF;

    -- This transaction's slot of positions. The top-level xid is the same in
    -- subtransactions (savepoints), so every append of the transaction uses
    -- one slot; the next free index is found from what the transaction has
    -- already inserted (rows rolled back to a savepoint are gone, so their
    -- positions are reused, which is harmless: nobody ever saw them).
    v_base := pg_current_xact_id()::text::bigint << 20;
    SELECT coalesce(max(e.global_position) + 1, v_base) INTO v_next
      FROM eventfold.events e
     WHERE e.global_position >= v_base
       AND e.global_position < v_base + c_slot_size;
    IF v_next - v_base + v_count > c_slot_size THEN
        RAISE EXCEPTION 'eventfold.append_events: a transaction may append at most % events (this one already has %, adding %)',
                c_slot_size, v_next - v_base, v_count
            USING ERRCODE = '54000',
                  HINT = 'Split the work into several transactions.';
    END IF;

    RETURN QUERY
    WITH inserted AS (
        INSERT INTO eventfold.events AS e
               (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
        SELECT v_next + u.ord - 1, p_stream_id, v_current + u.ord, u.event_id, u.event_type, u.data, u.metadata
          FROM unnest(p_event_ids, p_types, p_data, p_metadata)
               WITH ORDINALITY AS u(event_id, event_type, data, metadata, ord)
        RETURNING e.global_position, e.stream_version, e.recorded_at
    )
    SELECT i.global_position, i.stream_version, i.recorded_at
      FROM inserted i
     ORDER BY i.global_position;
END;
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch.';

-- +goose Down

-- Dropped in reverse order of creation. The schema is dropped without
-- CASCADE, so anything else a DBA put into it stops the down migration
-- instead of vanishing.
DROP FUNCTION IF EXISTS eventfold.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]);
DROP TABLE IF EXISTS eventfold.events;
DROP TABLE IF EXISTS eventfold.streams;
DROP SCHEMA IF EXISTS eventfold;
