-- sample.sql: wait events and lock waits of the backends of one database,
-- sampled every ~5 ms from a single session (no psql start-up per sample,
-- so the sampler itself adds little load), for runs whose clients are not
-- pgbench (esctl bench). Load it into a monitoring database of its own,
-- never into the database measured:
--
--   createdb efmon && psql -d efmon -f sample.sql
--   psql -d efmon -c "CALL sample('ids16', 'efb', 8)" &   # while esctl bench runs on efb
--   psql -d efmon -c "SELECT * FROM waits WHERE tag = 'ids16'"
--
-- pg_stat_activity and pg_locks are read once per sample (the statistics
-- snapshot is cleared each time); a lock wait is a pg_locks row not
-- granted.

CREATE TABLE IF NOT EXISTS samp (tag text, ts timestamptz, wet text, we text, state text, q text);
CREATE TABLE IF NOT EXISTS lsamp (tag text, ts timestamptz, locktype text, mode text, relation regclass, n int);

CREATE OR REPLACE PROCEDURE sample(p_tag text, p_db text, p_secs float) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  WHILE clock_timestamp() < t0 + make_interval(secs => p_secs) LOOP
    INSERT INTO samp
    SELECT p_tag, clock_timestamp(), coalesce(wait_event_type, 'CPU'), coalesce(wait_event, '-'), state,
           left(regexp_replace(query, '\s+', ' ', 'g'), 50)
      FROM pg_stat_activity WHERE datname = p_db AND backend_type = 'client backend';
    INSERT INTO lsamp
    SELECT p_tag, clock_timestamp(), l.locktype, l.mode, l.relation, count(*)
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE a.datname = p_db AND NOT l.granted
     GROUP BY l.locktype, l.mode, l.relation;
    COMMIT;
    PERFORM pg_stat_clear_snapshot();
    PERFORM pg_sleep(0.005);
  END LOOP;
END $$;

-- Share of backend samples per wait event, per tag. Relations of lsamp are
-- regclass: read them while the measured database still exists, or note
-- their OIDs.
CREATE OR REPLACE VIEW waits AS
SELECT tag, wet || ':' || we AS wait, count(*) AS samples,
       round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY tag), 1) AS pct
  FROM samp GROUP BY tag, wet, we ORDER BY tag, samples DESC;
