-- eventfold 00015: appends without the streams-row upsert, in one SQL
-- statement (PostgreSQL).
--
-- Why: an append cost ~130 µs of server time against ~25 µs for a bare
-- INSERT; the biggest parts were the upsert of the stream's row in
-- eventfold.streams (~38 µs: it took the per-stream lock and kept the
-- version) and the plpgsql function around three statements. The unique
-- index (stream_id, stream_version) of eventfold.events can carry the
-- expected-version check by itself:
--   * the stream's current version is the version of its last event (one
--     backward probe of that index, which also gives the position 00014
--     checks against), or, for a stream whose events were all archived,
--     the version eventfold.streams keeps for it (see below);
--   * the append inserts versions current+1, current+2, ...; a concurrent
--     appender to the same stream inserts the same current+1, so the
--     second one waits on the unique index for the first transaction
--     (INSERT ... ON CONFLICT ON CONSTRAINT
--     events_stream_id_stream_version_key DO NOTHING) and, when that one
--     committed, inserts fewer rows than it has events. The function below
--     then raises, so nothing is written: EF001 (DETAIL = the actual
--     version, read after the winner committed) when it expected an exact
--     version or no stream, as before; serialization_failure (40001: roll
--     back and run the transaction again, it then appends after the
--     winner) when it expected -1 (any) or -3 (exists), where before 00015
--     the stream row lock made it wait and then succeed. The Go library
--     instead removes what the statement inserted and runs it again in the
--     same transaction, which then sees the winner's events.
--   * the statement itself raises nothing: it reports a refusal (EF001
--     wrong version, EF002 moved database, EF003 stream written by a
--     later transaction, 54000 slot full: checked in this order, as
--     before) as a result row and then inserts nothing, so it needs no
--     function of its own and runs on any schema from 00006 on; the
--     function below raises these with the same messages, DETAIL and
--     HINTs as before, and the Go library maps them to the same errors.
--     (Since the stream row is no longer locked, EF003 now also covers a
--     later transaction that committed to the stream before this statement
--     started; one that has not committed yet collides on the index as
--     above. Either way nothing is ever appended below a later
--     transaction's events of the same stream.)

-- Appends to one stream queue on a transaction-scoped advisory lock,
-- pg_advisory_xact_lock(1162233857, hashtext(stream_id)) (two-key form:
-- its key space never meets the one-key form applications use; 1162233857
-- is 'EF' 0x0001), taken before the transaction id: like the stream row
-- lock before 00015, it makes appenders of a stream take their xids, hence
-- positions, in the order they get the stream, so that a queued appender
-- does not end up below the stream's last event (EF003). It is in memory
-- only (no row write, no WAL). The statement's snapshot predates the wait,
-- so a queued append then finds its versions taken (above) and runs again.

-- eventfold.streams is kept, no longer written by appends: it now holds,
-- for a stream whose events were archived (deleted from eventfold.events
-- by esctl archive), the version of its last archived event, so that
-- versions go on from there; a row written before this migration may hold
-- an older version than the stream's events (appends stopped updating it).
-- A stream's version is therefore greatest(max(stream_version) in events,
-- streams.version, 0). Archiving writes that row in the statement that
-- deletes the events (queries/postgres/archive.sql).
--
-- The position offset (00006) is still read only after this transaction
-- holds a lock that eventfold.check_positions(true) waits for: the INSERT
-- takes ROW EXCLUSIVE on eventfold.events before the statement runs, and
-- check_positions(true) locks eventfold.events EXCLUSIVE (it has since
-- 00006), so no position computed with an old offset commits after a new
-- one is in force.
--
-- The Go library sends the same statement itself, prepared, instead of
-- calling the function (internal/dialect/postgres/append.go; keep the two
-- in step). eventfold.append_events_returning_data and its wrapper
-- eventfold.append_events keep their signatures, checks and errors:
--   22023  NULL arguments, bad expected version, no events, array lengths
--   EF001  wrong expected version, DETAIL = actual version
--   40001  expected -1 or -3 and a concurrent append to the same stream
--          committed first: retry the transaction (new in 00015, see above)
--   EF002  positions behind the log (moved database), see 00006
--   EF003  stream written by a later transaction, see 00014
--   54000  more than 2^20 events in one transaction
--
-- Down restores 00014's function exactly and brings every stream row up
-- to its stream's version (the old function reads the version from it).
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
    v_count  int;
    v_rec    record;
    v_n      int := 0;
    v_actual bigint;
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

    -- The stream's lock first, in a statement of its own, so that the
    -- append statement's snapshot is taken after a concurrent appender of
    -- the stream committed (the statement takes it again: no-op).
    PERFORM pg_advisory_xact_lock(1162233857, hashtext(p_stream_id));

    -- The append statement of internal/dialect/postgres/append.go, with
    -- this function's arguments for its parameters. See the file header.
    FOR v_rec IN
    WITH lk AS MATERIALIZED (
        SELECT pg_advisory_xact_lock(1162233857, hashtext(p_stream_id::text)) AS locked
    ), b AS MATERIALIZED (
        SELECT (pg_current_xact_id()::text::bigint + o.last_value) << 20 AS base,
               o.last_value AS off,
               l.stream_version AS last_version,
               l.global_position AS last_position,
               (SELECT s.version FROM eventfold.streams s WHERE s.stream_id = p_stream_id::text) AS kept_version
          FROM lk, eventfold.position_offset o
          LEFT JOIN LATERAL (
              SELECT e.stream_version, e.global_position
                FROM eventfold.events e
               WHERE e.stream_id = p_stream_id::text
               ORDER BY e.stream_version DESC
               LIMIT 1) l ON true
    ), c AS MATERIALIZED (
        SELECT b.base, b.last_position,
               greatest(b.last_version, b.kept_version, 0) AS cur,
               coalesce((SELECT max(e.global_position) + 1
                           FROM eventfold.events e
                          WHERE e.global_position >= b.base
                            AND e.global_position < b.base + 1048576), b.base) AS next,
               (SELECT min(e.global_position)
                  FROM eventfold.events e
                 WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                     b.base + 1048576)) AS foreign_position
          FROM b
    ), r AS MATERIALIZED (
        SELECT c.cur, c.next, c.base, c.last_position, c.foreign_position,
               CASE
               WHEN NOT (p_expected_version::bigint = -1
                         OR (p_expected_version::bigint = -2 AND c.cur = 0)
                         OR (p_expected_version::bigint = -3 AND c.cur > 0)
                         OR (p_expected_version::bigint >= 0 AND c.cur = p_expected_version::bigint)) THEN 'EF001'
               WHEN c.foreign_position IS NOT NULL THEN 'EF002'
               WHEN c.last_position >= c.next THEN 'EF003'
               WHEN c.next - c.base + cardinality(p_event_ids::uuid[]) > 1048576 THEN '54000'
               END AS refusal
          FROM c
    ), ins AS (
        INSERT INTO eventfold.events AS e
               (global_position, stream_id, stream_version, event_id, event_type, data, metadata)
        SELECT r.next + u.ord - 1, p_stream_id::text, r.cur + u.ord, u.event_id, u.event_type, u.data, u.metadata
          FROM r, unnest(p_event_ids::uuid[], p_types::text[], p_data::jsonb[], p_metadata::jsonb[])
                  WITH ORDINALITY AS u(event_id, event_type, data, metadata, ord)
         WHERE r.refusal IS NULL
        ON CONFLICT ON CONSTRAINT events_stream_id_stream_version_key DO NOTHING
        RETURNING e.global_position, e.stream_version, e.recorded_at, e.data, e.metadata
    )
    SELECT i.global_position, i.stream_version, i.recorded_at, i.data, i.metadata,
           NULL::text AS refusal, NULL::bigint AS x, NULL::bigint AS y
      FROM ins i
    UNION ALL
    -- A refusal: nothing was inserted. x, y: EF001 the actual version; EF002
    -- the foreign position and this transaction's first; EF003 the stream's
    -- last position and this transaction's next; 54000 the events the
    -- transaction has and the events added.
    SELECT NULL, NULL, NULL, NULL, NULL, r.refusal,
           CASE r.refusal WHEN 'EF001' THEN r.cur WHEN 'EF002' THEN r.foreign_position
                          WHEN 'EF003' THEN r.last_position ELSE r.next - r.base END,
           CASE r.refusal WHEN 'EF001' THEN r.cur WHEN 'EF002' THEN r.base
                          WHEN 'EF003' THEN r.next ELSE cardinality(p_event_ids::uuid[]) END
      FROM r
     WHERE r.refusal IS NOT NULL
    LOOP
        IF v_rec.refusal IS NOT NULL THEN
            CASE v_rec.refusal
            WHEN 'EF001' THEN
                RAISE EXCEPTION 'eventfold: wrong expected version for stream "%": expected %, actual %',
                        p_stream_id,
                        CASE p_expected_version WHEN -1 THEN 'any' WHEN -2 THEN 'no-stream' WHEN -3 THEN 'exists'
                             ELSE p_expected_version::text END,
                        v_rec.x
                    USING ERRCODE = 'EF001', DETAIL = v_rec.x::text;
            WHEN 'EF002' THEN
                RAISE EXCEPTION 'eventfold: the log holds position % but this cluster''s transaction ids give positions from % (database restored into a new cluster?)',
                        v_rec.x, v_rec.y
                    USING ERRCODE = 'EF002',
                          HINT = 'Run SELECT * FROM eventfold.check_positions(true) (or esctl doctor --repair, or Store.Migrate), then retry.';
            WHEN 'EF003' THEN
                RAISE EXCEPTION 'eventfold: stream "%" was last written by a later transaction (its last event is at position %, this transaction''s next is %); a retry in a new transaction will succeed',
                        p_stream_id, v_rec.x, v_rec.y
                    USING ERRCODE = 'EF003',
                          HINT = 'Roll back and run the whole transaction again: a new transaction appends above it.';
            ELSE
                RAISE EXCEPTION 'eventfold.append_events: a transaction may append at most % events (this one already has %, adding %)',
                        1048576, v_rec.x, v_rec.y
                    USING ERRCODE = '54000',
                          HINT = 'Split the work into several transactions.';
            END CASE;
        END IF;
        v_n := v_n + 1;
        global_position := v_rec.global_position;
        stream_version  := v_rec.stream_version;
        recorded_at     := v_rec.recorded_at;
        data            := v_rec.data;
        metadata        := v_rec.metadata;
        RETURN NEXT;
    END LOOP;

    IF v_n < v_count THEN
        -- Versions taken by a concurrent append that committed while the
        -- insert waited for it (see the file header). This statement sees
        -- it; raising undoes what the append inserted.
        SELECT greatest((SELECT max(e.stream_version) FROM eventfold.events e WHERE e.stream_id = p_stream_id),
                        (SELECT s.version FROM eventfold.streams s WHERE s.stream_id = p_stream_id),
                        0)
          INTO v_actual;
        IF p_expected_version IN (-1, -3) THEN
            RAISE EXCEPTION 'eventfold: stream "%" was appended to by a concurrent transaction (now at version %); a retry will succeed',
                    p_stream_id, v_actual
                USING ERRCODE = '40001',
                      HINT = 'Roll back and run the whole transaction again.';
        END IF;
        RAISE EXCEPTION 'eventfold: wrong expected version for stream "%": expected %, actual %',
                p_stream_id,
                CASE p_expected_version WHEN -2 THEN 'no-stream' ELSE p_expected_version::text END,
                v_actual
            USING ERRCODE = 'EF001', DETAIL = v_actual::text;
    END IF;
    RETURN;
END;
$$;
-- +goose StatementEnd

COMMENT ON FUNCTION eventfold.append_events_returning_data(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, 40001 when it expected any version or an existing stream and a concurrent append to the stream committed first (retry), EF002 when the database was moved and needs eventfold.check_positions(true), EF003 when a later transaction already wrote to the stream (roll back and retry). Returns the events'' positions, versions, time, data and metadata as stored.';

COMMENT ON FUNCTION eventfold.append_events(text, bigint, uuid[], text[], jsonb[], jsonb[]) IS
    'Appends events to one stream after checking the expected version (-1 any, -2 no stream, -3 exists, n exact). Raises SQLSTATE EF001 (DETAIL = actual version) on mismatch, 40001 when it expected any version or an existing stream and a concurrent append to the stream committed first (retry), EF002 when the database was moved and needs eventfold.check_positions(true), EF003 when a later transaction already wrote to the stream (roll back and retry). See append_events_returning_data for the data as stored.';

COMMENT ON TABLE eventfold.streams IS 'Since 00015 not written by appends: for a stream whose events were archived, the version of its last archived event (rows from before 00015 may lag). A stream''s version is greatest(max(stream_version) in eventfold.events, this version, 0).';

-- +goose Down

-- Every stream row up to its stream's version: 00014's function reads the
-- version from it, and appends since 00015 did not write it.
INSERT INTO eventfold.streams AS s (stream_id, version, updated_at)
SELECT e.stream_id, max(e.stream_version), now()
  FROM eventfold.events e
 GROUP BY e.stream_id
ON CONFLICT (stream_id) DO UPDATE
   SET version = excluded.version, updated_at = excluded.updated_at
 WHERE s.version < excluded.version;

COMMENT ON TABLE eventfold.streams IS 'One row per stream with its current version; append_events upserts it (INSERT ... ON CONFLICT DO UPDATE), which locks the row and so serialises appends to that stream.';

-- 00014's function, exactly.
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


