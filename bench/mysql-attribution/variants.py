#!/usr/bin/env python3
"""Writes the procedures TestAppendAttribution compares (stdout; statements
separated by lines holding only ";;"). Each is eventfold_append_one's path for
expected version -1 (what esctl bench's dispatch sends: a fresh stream, "any"),
as of migration 00018, with one piece left out:

  p_full       all of it (should cost what "one", the installed procedure, costs)
  p_nosp       without SAVEPOINT / RELEASE SAVEPOINT
  p_nogate     without the gate's share-locked read of eventfold_position (and the floor check)
  p_nostreams  without the eventfold_streams upsert
  p_nointx     without the @@in_transaction check
  p_bare       only the DECLAREs, the events INSERT and the result SELECT
  pb_nores     p_bare without the result SELECT
  pb_nodecl    p_bare without the DECLAREs
  p_floorread  p_full reading eventfold_position without LOCK IN SHARE MODE (the floor
               without the gate: the lock's own cost)
  lean_one     00018's whole eventfold_append_one (every expectation) with fewer
               instructions: no v_msg/v_in_tx declared on the success path, one IF for
               the transaction check, LAST_INSERT_ID(0) as v_current's default, no
               RELEASE SAVEPOINT (commit drops it; the next SAVEPOINT replaces it)
"""
import os

def proc(name, sp=True, intx=True, streams=True, gate=True, decl=True, result=True, handler=True):
    s = f"""CREATE PROCEDURE {name}(IN p_stream_id VARBINARY(800), IN p_event_id VARBINARY(36), IN p_event_type VARBINARY(800),
 IN p_data LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, IN p_metadata LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin)
MODIFIES SQL DATA SQL SECURITY INVOKER
BEGIN
"""
    now, cur = "v_now", "v_current + 1"
    if decl:
        s += """ DECLARE v_now DATETIME(6) DEFAULT UTC_TIMESTAMP(6);
 DECLARE v_current BIGINT DEFAULT 0;
 DECLARE v_gate BIGINT DEFAULT 0;
 DECLARE v_msg VARCHAR(128);
 DECLARE v_in_tx BOOLEAN DEFAULT FALSE;
"""
    else:
        now, cur = "UTC_TIMESTAMP(6)", "1"
    if handler:
        s += """ DECLARE EXIT HANDLER FOR SQLEXCEPTION BEGIN BEGIN DECLARE CONTINUE HANDLER FOR 1305 BEGIN END; ROLLBACK TO SAVEPOINT eventfold_append_call; END; RESIGNAL; END;
"""
    if intx:
        s += """ SET v_in_tx = @@in_transaction = 1 OR FALSE;
 IF NOT v_in_tx THEN SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31002, MESSAGE_TEXT = 'not in a transaction'; END IF;
"""
    if sp:
        s += " SAVEPOINT eventfold_append_call;\n"
    if streams:
        s += """ SET v_current = LAST_INSERT_ID(0);
 INSERT INTO eventfold_streams (stream_id, version, updated_at) VALUES (p_stream_id, 1, v_now)
 ON DUPLICATE KEY UPDATE version = LAST_INSERT_ID(version + 1), updated_at = v_now;
 SET v_current = GREATEST(CAST(LAST_INSERT_ID() AS SIGNED) - 1, 0);
"""
    if gate:
        s += """ BEGIN DECLARE CONTINUE HANDLER FOR NOT FOUND SET v_gate = NULL;
 SELECT last_position INTO v_gate FROM eventfold_position WHERE id = 1 LOCK IN SHARE MODE; END;
 IF v_gate IS NULL THEN SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31003, MESSAGE_TEXT = 'no gate'; END IF;
"""
    s += f""" INSERT INTO eventfold_events (stream_id, stream_version, event_id, event_type, data, metadata, recorded_at)
 VALUES (p_stream_id, {cur}, p_event_id, p_event_type, p_data, p_metadata, {now});
"""
    if gate:
        s += """ IF CAST(LAST_INSERT_ID() AS SIGNED) <= v_gate THEN SIGNAL SQLSTATE '45000' SET MYSQL_ERRNO = 31004, MESSAGE_TEXT = 'behind'; END IF;
"""
    if sp:
        s += " RELEASE SAVEPOINT eventfold_append_call;\n"
    if result:
        s += f" SELECT CAST(LAST_INSERT_ID() AS SIGNED) AS global_position, {cur} AS stream_version, {now} AS recorded_at;\n"
    else:
        s += " SET @eventfold_attr = LAST_INSERT_ID();\n"
    return s + "END"

bare = dict(sp=False, intx=False, streams=False, gate=False, handler=False)
procs = [
    proc("p_full"), proc("p_nosp", sp=False), proc("p_nogate", gate=False), proc("p_nostreams", streams=False),
    proc("p_nointx", intx=False), proc("p_bare", **bare), proc("pb_nores", result=False, **bare),
    proc("pb_nodecl", decl=False, **bare),
    # the floor read without the share lock: what the gate's lock itself costs
    proc("p_floorread").replace("p_floorread(", "p_floorread(", 1).replace(
        "WHERE id = 1 LOCK IN SHARE MODE;", "WHERE id = 1;"),
]
# lean_one: the whole procedure (TestAppendAttribution calls a variant named *_one with
# eventfold_append_one's arguments, expected version -1)
here = os.path.dirname(os.path.abspath(__file__))
lean = open(os.path.join(here, "lean_one.sql")).read()
procs.append(lean)
# Copies of eventfold_events for ev_nochk, ev_noid and ev_nocheck.
procs += [
    "CREATE TABLE ev_nochk LIKE eventfold_events",
    "ALTER TABLE ev_nochk DROP CONSTRAINT eventfold_events_data_json, DROP CONSTRAINT eventfold_events_metadata_object,"
    " ADD CONSTRAINT ev_nochk_metadata_object CHECK (JSON_TYPE(metadata) = 'OBJECT')",
    "CREATE TABLE ev_noid LIKE eventfold_events",
    "ALTER TABLE ev_noid DROP INDEX eventfold_events_event_id_key",
    "CREATE TABLE ev_nocheck (global_position BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, stream_id VARBINARY(800) NOT NULL,"
    " stream_version BIGINT NOT NULL, event_id VARBINARY(36) NOT NULL, event_type VARBINARY(800) NOT NULL,"
    " data LONGTEXT NOT NULL, metadata LONGTEXT NOT NULL, recorded_at DATETIME(6) NOT NULL,"
    " UNIQUE KEY (stream_id, stream_version), UNIQUE KEY (event_id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
]
print("\n;;\n".join(procs))
