-- eventfold 00014: a stream's events never ordered by position differently
-- from their versions (PostgreSQL).
--
-- Why: positions are ((xid + offset) << 20) + index (00006). A transaction
-- gets its xid at its first write, which can come well before it locks the
-- stream row in the append (a command handler that writes its read model
-- first, a group-commit batch, any application write in the caller's
-- transaction). So transaction A (xid 100) can wait for, or simply come
-- after, transaction B (xid 101) that appends versions 1-2 of stream S and
-- commits; A then appends version 3 of S at a position BELOW version 1.
-- Readers in position order (ReadAll, subscriptions, the listener, relays)
-- saw version 3 before versions 1-2. Seen in the field: stream "shared-1",
-- version 1 at 1234652102656 (xid 1177455), versions 3-5 at 1234651054082
-- (xid 1177454).
--
-- What this changes: eventfold.append_events_returning_data (and through it
-- the eventfold.append_events wrapper, unchanged) now, after locking the
-- stream row and the checks of 00006, looks up the position of the stream's
-- last event and refuses the append when it is not below this transaction's
-- next position:
--   SQLSTATE EF003  "stream ... was last written by a later transaction";
--                   nothing is written (the statement, stream row update
--                   included, rolls back; the transaction is aborted).
--                   Roll back and run the transaction again: a new
--                   transaction gets a higher xid, so the retry succeeds.
--                   The Go library maps it to eventfold.ErrTransient: the
--                   orchestrator retries the command, Store.Append retries
--                   once by itself. A DBA's script calling append_events
--                   must do the same.
-- Cost: one probe of the (stream_id, stream_version) unique index per append
-- to an existing stream, in the statement that already computes the slot.
-- Measured (2026-12-01, 2-core shared machine, pgbench interleaving this and
-- 00006's function in the same sessions, one event per call, 200 streams,
-- synchronous_commit=off): mean latency new/old 0.96-1.10 at 1 client and
-- 1.02-1.03 at 8 clients, i.e. within the run-to-run noise.
--
-- Down restores 00006's function exactly.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventfold.append_events_returning_data(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_data             jsonb[],
    p_metadata         jsonb[]
) RETURNS TABLE (global_position bigint, stream_version bigint, recorded_at timestamptz, data jsonb, metadata jsonb)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    c_slot_size constant bigint := 1048576;
    v_count   int;
    v_current bigint;
    v_base    bigint;
    v_next    bigint;
    v_max     bigint;
    v_last    bigint;
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

    -- The offset is read only now, after the upsert above took ROW
    -- EXCLUSIVE on eventfold.streams: check_positions(true) locks that table
    -- EXCLUSIVE, so it waits for this transaction, and no position computed
    -- with an old offset can commit after a new one is in force.
    --
    -- In the same statement (one snapshot): this transaction's slot (see
    -- 00001), and the check that the log holds no position this cluster
    -- cannot have produced. Every visible row was committed by a
    -- transaction below the snapshot's xmax, or is this transaction's own
    -- (in its slot), so a visible position at or above both bounds comes
    -- from another cluster: the database was restored from one. Writing
    -- here would put events below the log's head, where subscriptions
    -- never look; refuse instead. Both are index probes that normally find
    -- nothing past their bound, so they touch no heap page.
    SELECT b.base,
           coalesce((SELECT max(e.global_position) + 1
                       FROM eventfold.events e
                      WHERE e.global_position >= b.base
                        AND e.global_position < b.base + c_slot_size), b.base),
           (SELECT min(e.global_position)
              FROM eventfold.events e
             WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                 b.base + c_slot_size)),
           -- 00014: the position of the stream's last event (one probe of
           -- the (stream_id, stream_version) index; none for a new stream).
           CASE WHEN v_current > 0 THEN
               (SELECT e.global_position
                  FROM eventfold.events e
                 WHERE e.stream_id = p_stream_id
                 ORDER BY e.stream_version DESC
                 LIMIT 1)
           END
      INTO v_base, v_next, v_max, v_last
      FROM (SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base, o.last_value AS off
              FROM eventfold.position_offset o) b;
    IF v_max IS NOT NULL THEN
        RAISE EXCEPTION 'eventfold: the log holds position % but this cluster''s transaction ids give positions from % (database restored into a new cluster?)',
                v_max, v_base
            USING ERRCODE = 'EF002',
                  HINT = 'Run SELECT * FROM eventfold.check_positions(true) (or esctl doctor --repair, or Store.Migrate), then retry.';
    END IF;
    -- 00014: this stream's events must stay in version order by position.
    -- The xid (the slot) is assigned at the transaction's first write,
    -- which may come long before the stream row lock above: a transaction
    -- with a lower xid can get the lock after a higher-xid one committed
    -- to this stream. Its events would then sort BEFORE earlier versions
    -- of the stream, and every reader in position order would see them
    -- out of order. Refuse instead: the stream row is locked, so its last
    -- event cannot change under us, and a new transaction gets a higher
    -- xid, so a retry succeeds. Own earlier appends in this transaction
    -- lie in its slot, below v_next, and pass.
    IF v_last >= v_next THEN
        RAISE EXCEPTION 'eventfold: stream "%" was last written by a later transaction (its last event is at position %, this transaction''s next is %); a retry in a new transaction will succeed',
                p_stream_id, v_last, v_next
            USING ERRCODE = 'EF003',
                  HINT = 'Roll back and run the whole transaction again: a new transaction appends above it.';
    END IF;
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
        RETURNING e.global_position, e.stream_version, e.recorded_at, e.data, e.metadata
    )
    SELECT i.global_position, i.stream_version, i.recorded_at, i.data, i.metadata
      FROM inserted i
     ORDER BY i.global_position;
END;
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.append_events_returning_data(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, EF002 when the database was moved and needs eventfold.check_positions(true), EF003 when a later transaction already wrote to the stream (roll back and retry). Returns the events'' positions, versions, time, data and metadata as stored.';

COMMENT ON FUNCTION eventfold.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, EF002 when the database was moved and needs eventfold.check_positions(true), EF003 when a later transaction already wrote to the stream (roll back and retry). See append_events_returning_data for the data as stored.';

-- +goose Down

-- 00006's function, exactly.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventfold.append_events_returning_data(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_data             jsonb[],
    p_metadata         jsonb[]
) RETURNS TABLE (global_position bigint, stream_version bigint, recorded_at timestamptz, data jsonb, metadata jsonb)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    c_slot_size constant bigint := 1048576;
    v_count   int;
    v_current bigint;
    v_base    bigint;
    v_next    bigint;
    v_max     bigint;
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

    -- The offset is read only now, after the upsert above took ROW
    -- EXCLUSIVE on eventfold.streams: check_positions(true) locks that table
    -- EXCLUSIVE, so it waits for this transaction, and no position computed
    -- with an old offset can commit after a new one is in force.
    --
    -- In the same statement (one snapshot): this transaction's slot (see
    -- 00001), and the check that the log holds no position this cluster
    -- cannot have produced. Every visible row was committed by a
    -- transaction below the snapshot's xmax, or is this transaction's own
    -- (in its slot), so a visible position at or above both bounds comes
    -- from another cluster: the database was restored from one. Writing
    -- here would put events below the log's head, where subscriptions
    -- never look; refuse instead. Both are index probes that normally find
    -- nothing past their bound, so they touch no heap page.
    SELECT b.base,
           coalesce((SELECT max(e.global_position) + 1
                       FROM eventfold.events e
                      WHERE e.global_position >= b.base
                        AND e.global_position < b.base + c_slot_size), b.base),
           (SELECT min(e.global_position)
              FROM eventfold.events e
             WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                 b.base + c_slot_size))
      INTO v_base, v_next, v_max
      FROM (SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base, o.last_value AS off
              FROM eventfold.position_offset o) b;
    IF v_max IS NOT NULL THEN
        RAISE EXCEPTION 'eventfold: the log holds position % but this cluster''s transaction ids give positions from % (database restored into a new cluster?)',
                v_max, v_base
            USING ERRCODE = 'EF002',
                  HINT = 'Run SELECT * FROM eventfold.check_positions(true) (or esctl doctor --repair, or Store.Migrate), then retry.';
    END IF;
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
        RETURNING e.global_position, e.stream_version, e.recorded_at, e.data, e.metadata
    )
    SELECT i.global_position, i.stream_version, i.recorded_at, i.data, i.metadata
      FROM inserted i
     ORDER BY i.global_position;
END;
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.append_events_returning_data(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, EF002 when the database was moved and needs eventfold.check_positions(true). Returns the events'' positions, versions, time, data and metadata as stored.';

COMMENT ON FUNCTION eventfold.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, EF002 when the database was moved and needs eventfold.check_positions(true). See append_events_returning_data for the data as stored.';
