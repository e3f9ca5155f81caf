#!/usr/bin/env python3
"""Writes pgbench scripts that take eventfold's PostgreSQL append statement
apart, one piece at a time, for attributing its server cost (see README.md).

usage: gen.py [OUTDIR]   (default /tmp/ef-attribution)

The statements are read from internal/dialect/postgres/append.go, so the
variants follow the statement as it is; a variant whose piece is no longer
found in it fails loudly (assert) instead of measuring something else.
Per transaction, like shared/bench/pg_append.pgbench: BEGIN; the append (or
the raw INSERT); the read-model upsert; COMMIT. Event ids are time-ordered
(UUIDv7-like, ms prefix) as the library's are: random (v4) ids would charge
the event-id index with random-page writes eventfold never does.
"""
import os
import re
import sys

here = os.path.dirname(os.path.abspath(__file__))
out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/ef-attribution"
os.makedirs(out, exist_ok=True)
src = open(os.path.join(here, "../../../internal/dialect/postgres/append.go")).read()


def raw_const(name):
    # A Go string constant: raw literals and other constants joined by +.
    pos = re.search(r"const %s = " % name, src).end()
    parts = []
    while True:
        m = re.compile(r"\s*`(.*?)`", re.S).match(src, pos) or re.compile(r"\s*(\w+)").match(src, pos)
        parts.append(m.group(1) if m.group(0).lstrip().startswith("`") else raw_const(m.group(1)))
        pos = m.end()
        plus = re.compile(r"\s*\+").match(src, pos)
        if not plus:
            return "".join(parts)
        pos = plus.end()


def const(name):
    s = raw_const(name)
    return "\n".join(l for l in s.split("\n") if not l.strip().startswith("--"))


single, many = const("appendStatement"), const("appendManyStatement")
sid = "('acct-' || :client_id || '-' || :acct)"
uuid7 = "(lpad(to_hex((extract(epoch from clock_timestamp())*1000)::bigint), 12, '0') || substr(md5(random()::text), 1, 20))::uuid"
upsert = ("INSERT INTO accounts (id, balance, version) VALUES (%s, :amt, 1) ON CONFLICT (id) DO UPDATE "
          "SET balance = accounts.balance + EXCLUDED.balance, version = accounts.version + 1;")
header = "\\set acct random(1, 100000000)\n\\set amt random(1, 1000)\n\\set exp -1\nBEGIN;\n"


def bind(s):
    for a, b in (("$1::text", sid + "::text"), ("$2::bigint", "(:exp)::bigint"), ("$3::uuid[]", "ARRAY[%s]" % uuid7),
                 ("$4::text[]", "ARRAY['Deposited']"), ("$5::jsonb[]", "ARRAY[jsonb_build_object('amount', (:amt)::int)]"),
                 ("$6::jsonb[]", "ARRAY['{}'::jsonb]")):
        s = s.replace(a, b)
    assert "$" not in s, s
    return s


def cut(s, piece, by):
    assert piece in s, "piece not found (the statement changed?):\n" + piece
    return s.replace(piece, by)


lock_join = ("FROM lk, eventfold.position_offset o", "FROM eventfold.position_offset o")
foreign = ("""(SELECT min(e.global_position)
              FROM eventfold.events e
             WHERE e.global_position >= greatest((pg_snapshot_xmax(pg_current_snapshot())::text::bigint + b.off) << 20,
                                                 b.base + 1048576)) AS foreign_position""", "NULL::bigint AS foreign_position")
slot = ("""coalesce((SELECT max(e.global_position) + 1
                       FROM eventfold.events e
                      WHERE e.global_position >= b.base
                        AND e.global_position < b.base + 1048576), b.base) AS next""", "b.base AS next")
streams = ("(SELECT s.version FROM eventfold.streams s WHERE s.stream_id = $1::text) AS kept_version", "NULL::bigint AS kept_version")
last = ("""LEFT JOIN LATERAL (
          SELECT e.stream_version, e.global_position
            FROM eventfold.events e
           WHERE e.stream_id = $1::text
           ORDER BY e.stream_version DESC
           LIMIT 1) l ON true""", "LEFT JOIN LATERAL (SELECT NULL::bigint AS stream_version, NULL::bigint AS global_position) l ON true")
conflict = ("    ON CONFLICT ON CONSTRAINT events_stream_id_stream_version_key DO NOTHING\n", "")
retdata = ("RETURNING e.global_position, e.stream_version, e.recorded_at, e.data, e.metadata",
           "RETURNING e.global_position, e.stream_version, e.recorded_at, NULL::jsonb AS data, NULL::jsonb AS metadata")

variants = {
    "full": [],                     # the statement as the library sends it
    "nolock": [lock_join],          # without the per-stream advisory lock
    "noforeign": [foreign],         # without the moved-database (EF002) probe
    "noslot": [slot],               # without the probe of the transaction's slot
    "nostreams": [streams],         # without the archived-stream version lookup
    "nolast": [last],               # without the stream's last-event probe
    "noprobes": [foreign, slot, streams, last],
    "noconflict": [conflict],       # plain INSERT instead of ON CONFLICT DO NOTHING
    "noretdata": [retdata],         # RETURNING without data and metadata
}
for name, cuts in variants.items():
    s = single
    for piece, by in cuts:
        s = cut(s, piece, by)
    open(os.path.join(out, name + ".pgbench"), "w").write(header + bind(s) + ";\n" + upsert % sid + "\nCOMMIT;\n")

# The events table alone: one INSERT with the position from the transaction
# id, no CTE, lock, probe or ON CONFLICT (same table, indexes and checks).
plain = ("INSERT INTO eventfold.events (global_position, stream_id, stream_version, event_id, event_type, data, metadata) "
         "SELECT (pg_current_xact_id()::text::bigint) << 20, %s, 1, %s, 'Deposited', jsonb_build_object('amount', (:amt)::int), "
         "'{}'::jsonb RETURNING global_position, stream_version, recorded_at, data, metadata;" % (sid, uuid7))
open(os.path.join(out, "plainef.pgbench"), "w").write(header + plain + "\n" + upsert % sid + "\nCOMMIT;\n")
# raw: shared/bench/pg_schema.sql's events table (bigserial, UNIQUE (stream_id, version)).
raw = "INSERT INTO events (stream_id, version, type, data) VALUES (%s, 1, 'Deposited', jsonb_build_object('amount', (:amt)::int));" % sid
open(os.path.join(out, "raw.pgbench"), "w").write(header + raw + "\n" + upsert % sid + "\nCOMMIT;\n")

# Idempotent dispatch (a command with an id): the lookup first, the record
# with COMMIT, as queries/postgres/commands.sql has them (LookupCommand,
# RecordCommandStrict), around raw's statements and around the append.
cid = "('cmd-' || :client_id || '-' || :acct)"
lookup = "SELECT command_type, payload_hash, events FROM eventfold.commands WHERE scope = '' AND command_id = %s;\n" % cid
record = ("INSERT INTO eventfold.commands (scope, command_id, command_type, payload_hash, events) VALUES ('', %s, 'Deposit', "
          "'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', "
          "('[{\"s\":\"' || %s || '\",\"v\":1}]')::jsonb);\n" % (cid, sid))
for name in ("raw", "full"):
    body = open(os.path.join(out, name + ".pgbench")).read()
    assert body.count("BEGIN;\n") == 1 and body.count("COMMIT;") == 1
    body = body.replace("BEGIN;\n", "BEGIN;\n" + lookup).replace("COMMIT;", record + "COMMIT;")
    open(os.path.join(out, name + "ids.pgbench"), "w").write(body)

# Group commit: N commands in one transaction, one appendManyStatement
# against one multi-row INSERT, each with one multi-row upsert (the batch
# reducer of esctl bench's batched mode).
N = 10
hdr = "\\set amt random(1, 1000)\n\\set exp -1\n" + "".join("\\set a%d random(1, 100000000)\n" % i for i in range(N)) + "BEGIN;\n"
ids = ["('acct-' || :client_id || '-' || :a%d)" % i for i in range(N)]
m = many
for a, b in (("$1::text[]", "ARRAY[%s]::text[]" % ", ".join(ids)), ("$2::bigint[]", "array_fill((:exp)::bigint, ARRAY[%d])" % N),
             ("$3::int[]", "array_fill(1, ARRAY[%d])" % N), ("$4::uuid[]", "ARRAY[%s]" % ", ".join([uuid7] * N)),
             ("$5::text[]", "array_fill('Deposited'::text, ARRAY[%d])" % N),
             ("$6::jsonb[]", "array_fill(jsonb_build_object('amount', (:amt)::int), ARRAY[%d])" % N),
             ("$7::jsonb[]", "array_fill('{}'::jsonb, ARRAY[%d])" % N)):
    m = m.replace(a, b)
assert "$" not in m
ups = ("INSERT INTO accounts (id, balance, version) VALUES %s ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + "
       "EXCLUDED.balance, version = accounts.version + EXCLUDED.version;" % ", ".join("(%s, :amt, 1)" % i for i in ids))
open(os.path.join(out, "many%d.pgbench" % N), "w").write(hdr + m + ";\n" + ups + "\nCOMMIT;\n")
rawins = "INSERT INTO events (stream_id, version, type, data) VALUES %s;" % ", ".join(
    "(%s, 1, 'Deposited', jsonb_build_object('amount', (:amt)::int))" % i for i in ids)
open(os.path.join(out, "rawmany%d.pgbench" % N), "w").write(hdr + rawins + "\n" + ups + "\nCOMMIT;\n")
print(out)
