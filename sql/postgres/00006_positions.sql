-- eventfold 00006: positions that survive a move to a new cluster, and appends
-- that return what readers will read (PostgreSQL).
--
-- Why: positions were (xid << 20) + index. A transaction id belongs to the
-- cluster, not to the database: pg_upgrade, physical replicas and failover
-- keep the counter, but a logical dump/restore (pg_dump + pg_restore/psql)
-- or logical replication into another cluster restarts it low (near 700).
-- Afterwards readers saw none of the restored events (all above the new
-- horizon), new events got positions BELOW the restored ones (subscriptions
-- checkpointed at the old head never saw them), and once the new counter
-- caught up, appends collided on the primary key.
--
-- What this creates, inside schema "eventfold":
--   eventfold.position_offset   a sequence used as one number, the offset:
--                               position = ((xid + offset) << 20) + index.
--                               0 on a database that was never moved.
--                               A sequence because its value is read and
--                               written outside MVCC: an append in a
--                               REPEATABLE READ transaction still sees an
--                               offset raised after its snapshot was taken.
--                               pg_dump carries it (setval); logical
--                               replication does not, and need not: the
--                               repair computes it from the data.
--   eventfold.horizon()         the readers' gap-free horizon, same scheme:
--                               (snapshot xmin + offset) << 20.
--   eventfold.check_positions(p_repair)
--                               reports (and with p_repair = true repairs) a
--                               log whose positions are ahead of what this
--                               cluster's transaction ids produce. Store.Migrate,
--                               `esctl migrate up` and `esctl doctor --repair`
--                               call it; a DBA may too:
--                                 SELECT * FROM eventfold.check_positions();      -- report
--                                 SELECT * FROM eventfold.check_positions(true);  -- repair
--   eventfold.append_events_returning_data
--                               the append, now: uses the offset, refuses to
--                               write below the log (SQLSTATE EF002) instead
--                               of losing events, and returns data and
--                               metadata as stored (jsonb normalises: duplicate
--                               keys, key order, whitespace, number spelling),
--                               so the caller gets the bytes every reader gets.
--   eventfold.append_events     kept (same arguments and result columns, so
--                               the previous release keeps running during a
--                               rolling upgrade), now a wrapper of the above.
--
-- The repair, and why it is safe while the store is in use: when (and only
-- when) a first look without locks finds a move, it locks
-- eventfold.streams (and events) in EXCLUSIVE mode (readers go on; appends
-- wait), which waits for every append in flight, because every append
-- upserts its stream row, taking ROW EXCLUSIVE on eventfold.streams, BEFORE
-- it reads the offset. So no append
-- that read the old offset can commit after the new one is in force. The new
-- offset puts (oldest running xid + offset) << 20 above every position in
-- the log, the archive watermark and every checkpoint: from then on every
-- append is above the old head, and readers see all restored events.
--
-- Apply with goose (the library does this in Store.Migrate):
--   goose -dir sql/postgres -table eventfold_goose_version postgres "$DSN" up

-- +goose Up

CREATE SEQUENCE eventfold.position_offset AS bigint MINVALUE 0 START WITH 0 NO CYCLE;

COMMENT ON SEQUENCE eventfold.position_offset IS 'Its last_value is the position offset: global_position = ((xid + offset) << 20) + index. Raised only by eventfold.check_positions(true) after a move to a new cluster; never lower it.';

-- +goose StatementBegin
CREATE FUNCTION eventfold.horizon() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    -- Every transaction below the snapshot's xmin has finished; any that
    -- finishes later has an xid >= xmin and (see append_events) an offset
    -- at least this one, hence a larger position.
    SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::bigint + o.last_value) << 20
      FROM eventfold.position_offset o
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.horizon() IS 'Gap-free reading horizon: read the whole log only where global_position < eventfold.horizon().';

-- +goose StatementBegin
CREATE FUNCTION eventfold.check_positions(p_repair boolean DEFAULT false)
RETURNS TABLE (
    moved           boolean, -- the log holds positions this cluster cannot have produced
    repaired        boolean, -- the offset was raised just now
    old_offset      bigint,
    new_offset      bigint,
    last_position   bigint,  -- highest of: events, archive watermark - 1, checkpoints
    next_position   bigint,  -- lowest position an append that starts now can get
    message         text
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_off   bigint;
    v_floor bigint;
    v_xmin  bigint;
    v_xmax  bigint;
    v_pass  int;
BEGIN
    -- Two passes when repairing: the first without the lock, so that the
    -- common case (nothing moved; Store.Migrate at every start of every
    -- instance) never stalls appends behind a long writing transaction;
    -- the second, only when the first found a move, under the lock.
    FOR v_pass IN 1..2 LOOP
        IF v_pass = 2 THEN
            -- Waits for appends in flight (each holds ROW EXCLUSIVE on
            -- streams from its first statement, before it reads the offset)
            -- and keeps new ones out until commit; readers are not blocked.
            -- events too, for anything writing there directly (esctl restore).
            LOCK TABLE eventfold.streams, eventfold.events IN EXCLUSIVE MODE;
        END IF;
        SELECT o.last_value INTO v_off FROM eventfold.position_offset o;
        SELECT greatest(
                   (SELECT max(e.global_position) FROM eventfold.events e),
                   (SELECT w.archived_before - 1 FROM eventfold.archive_watermark w WHERE w.id = 1),
                   (SELECT max(c.position) FROM eventfold.checkpoints c),
                   0)
          INTO v_floor;
        -- The snapshot's xmax, or this transaction's own xid + 1 when it is
        -- higher (its own rows are visible to it). Taken after the rows
        -- above, so never too low for them.
        SELECT pg_snapshot_xmin(s)::text::bigint,
               greatest(pg_snapshot_xmax(s)::text::bigint,
                        coalesce(pg_current_xact_id_if_assigned()::text::bigint + 1, 0))
          INTO v_xmin, v_xmax
          FROM pg_current_snapshot() s;
        moved := v_floor >= (v_xmax + v_off) << 20;
        EXIT WHEN NOT (moved AND p_repair);
    END LOOP;
    repaired := false;
    old_offset := v_off;
    new_offset := v_off;
    last_position := v_floor;
    IF moved AND p_repair THEN
        -- Put the oldest running transaction's slot above the log.
        new_offset := (v_floor >> 20) + 1 - v_xmin;
        PERFORM setval('eventfold.position_offset', new_offset, true);
        repaired := true;
    END IF;
    next_position := (v_xmin + new_offset) << 20;
    message := CASE
        WHEN repaired THEN format('positions repaired: the log reached position %s but this cluster''s transaction ids start new positions at %s (database moved to a new cluster by a logical dump/restore or logical replication?); offset raised from %s to %s, new positions start at %s',
                                  v_floor, (v_xmax + v_off) << 20, v_off, new_offset, next_position)
        WHEN moved THEN format('positions need repair: the log reached position %s but this cluster''s transaction ids start new positions at %s (database moved to a new cluster by a logical dump/restore or logical replication?); run SELECT * FROM eventfold.check_positions(true)',
                               v_floor, (v_xmax + v_off) << 20)
        ELSE format('positions ok: the log reached position %s, new positions start above it (offset %s)', v_floor, v_off)
    END;
    IF repaired THEN
        RAISE NOTICE '%', message;
    END IF;
    RETURN NEXT;
END;
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.check_positions(boolean) IS
    'Reports whether the log holds positions above what this cluster''s transaction ids produce (after a logical dump/restore into a new cluster); with true, raises eventfold.position_offset so that every new position lies above the log.';

-- eventfold.append_events_returning_data: what eventfold.append_events of
-- 00001 did (same arguments, checks and errors), except:
--   * position = ((xid + eventfold.position_offset) << 20) + index;
--   * SQLSTATE EF002 when the log already holds positions this cluster cannot
--     have produced (moved database, not yet repaired): nothing is written;
--     run SELECT * FROM eventfold.check_positions(true), then retry;
--   * it also returns data and metadata as stored.
-- A new name rather than a new result type for append_events, so that
-- application instances still running the previous release (and DBAs'
-- scripts) keep working after this migration: append_events below becomes
-- a wrapper with its old result columns.
-- +goose StatementBegin
CREATE FUNCTION eventfold.append_events_returning_data(
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

-- The 00001 entry point, same arguments and result columns, now through
-- the function above (offset, EF002).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventfold.append_events(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_data             jsonb[],
    p_metadata         jsonb[]
) RETURNS TABLE (global_position bigint, stream_version bigint, recorded_at timestamptz)
LANGUAGE sql
AS $$
    SELECT a.global_position, a.stream_version, a.recorded_at
      FROM eventfold.append_events_returning_data(p_stream_id, p_expected_version, p_event_ids, p_types, p_data, p_metadata) a
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, EF002 when the database was moved and needs eventfold.check_positions(true). See append_events_returning_data for the data as stored.';

-- +goose Down

-- Back to the 00001 function. Refused when the offset is in use: without
-- it, new positions would fall below the log (the very loss this fixes).
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT last_value FROM eventfold.position_offset) <> 0 THEN
        RAISE EXCEPTION 'eventfold 00006 down: eventfold.position_offset is %, the database was moved; without it new positions would fall below the log', (SELECT last_value FROM eventfold.position_offset);
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION eventfold.append_events(
    p_stream_id        text,
    p_expected_version bigint,
    p_event_ids        uuid[],
    p_types            text[],
    p_data             jsonb[],
    p_metadata         jsonb[]
) RETURNS TABLE (global_position bigint, stream_version bigint, recorded_at timestamptz)
LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
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

DROP FUNCTION IF EXISTS eventfold.append_events_returning_data(text, bigint, uuid[], text[], jsonb[], jsonb[]);
DROP FUNCTION IF EXISTS eventfold.check_positions(boolean);
DROP FUNCTION IF EXISTS eventfold.horizon();
DROP SEQUENCE IF EXISTS eventfold.position_offset;
