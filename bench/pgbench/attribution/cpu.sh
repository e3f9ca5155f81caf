#!/usr/bin/env bash
# cpu.sh SCRIPT [CLIENTS] [SECS] [DB]: runs SCRIPT with pgbench (-M prepared,
# CLIENTS clients, the server's own synchronous_commit: as esctl bench runs),
# records its backends' on-CPU time with `perf record -e cpu-clock` for SECS
# seconds after a 1.5 s warm-up, and prints it per transaction with the
# tps. profile.sh is the same at 4 clients without the WAL flush, with the
# split by executor phase. Needs root (perf on other users' processes).
set -euo pipefail
script=$1; c=${2:-16}; secs=${3:-3}; db=${4:-efattr}
out=$(mktemp /tmp/efattr-out.XXXXXX); data=$(mktemp /tmp/efattr-perf.XXXXXX)
pgbench -n -M prepared -c "$c" -j 2 -T $((secs + 3)) -f "$script" "$db" >"$out" 2>&1 &
pb=$!
sleep 1.5
pids=$(psql -d "$db" -Atc "SELECT string_agg(pid::text, ',') FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'pgbench'")
[ -n "$pids" ] || { echo "cpu.sh: no backends of $db found" >&2; cat "$out" >&2; exit 1; }
perf record -q -e cpu-clock -F 2000 -g -p "$pids" -o "$data" -- sleep "$secs" >/dev/null 2>&1 || true # exits non-zero when its sleep ends
wait $pb || { echo "cpu.sh: pgbench failed" >&2; cat "$out" >&2; exit 1; }
tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$out")
ns=$(perf script -i "$data" -F period 2>/dev/null | awk '{s += $1} END {print s}')
echo "$(basename "$script" .pgbench) c=$c: tps $tps, backend on-CPU $(echo "scale=1; $ns / 1000 / ($tps * $secs)" | bc) us/txn (load $(cut -d' ' -f1 /proc/loadavg))"
rm -f "$data" "$out"
