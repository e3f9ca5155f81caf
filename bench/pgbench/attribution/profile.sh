#!/usr/bin/env bash
# profile.sh SCRIPT [SECS] [DB]: runs SCRIPT with pgbench (4 clients,
# -M prepared, synchronous_commit=off in these sessions only: CPU, not the
# WAL flush), records the on-CPU time of their server backends with
# `perf record -e cpu-clock -g` for SECS seconds after a 2 s warm-up, and
# prints it per transaction, split into executor phases (inclusive time).
# Needs root (perf on other users' processes) and PGHOST/PGUSER as for psql.
# Figures are load-sensitive: compare variants run in the same minute,
# interleaved, and trust the split more than the totals.
set -euo pipefail
script=$1; secs=${2:-6}; db=${3:-efattr}
export PGOPTIONS="-c synchronous_commit=off"
data=$(mktemp /tmp/efattr-perf.XXXXXX); out=$(mktemp /tmp/efattr-out.XXXXXX)
pgbench -n -M prepared -c 4 -j 1 -T $((secs + 4)) -f "$script" "$db" >"$out" 2>&1 &
pb=$!
sleep 2
pids=
for _ in $(seq 20); do # under load the clients may take seconds to connect
  pids=$(pgrep -f "postgres: .*postgres $db [0-9]" | paste -sd,) || true
  [ -n "$pids" ] && break
  sleep 0.5
done
[ -n "$pids" ] || { echo "profile.sh: no backends of $db found" >&2; cat "$out" >&2; exit 1; }
perf record -q -e cpu-clock -F 2000 -g -p "$pids" -o "$data" -- sleep "$secs" 2>/dev/null
wait $pb || { echo "profile.sh: pgbench failed" >&2; cat "$out" >&2; exit 1; }
tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$out")
ns=$(perf script -i "$data" -F period 2>/dev/null | awk '{s += $1} END {print s}')
us=$(echo "scale=1; $ns / 1000 / ($tps * $secs)" | bc)
echo "$(basename "$script" .pgbench): tps $tps, backend on-CPU $us us/txn (load $(cut -d' ' -f1 /proc/loadavg))"
perf report -i "$data" --children --sort sym -g none 2>/dev/null | grep -v '^#' >"$out"
for f in standard_ExecutorStart GetCachedPlan standard_ExecutorRun ExecConstraints ExecCheckIndexConstraints \
         ExecInsertIndexTuples heap_insert _bt_first XLogInsert LockAcquireExtended CommitTransactionCommand __send; do
  p=$(awk -v f="$f" '$NF == f {gsub("%", "", $1); print $1; exit}' "$out")
  if [ -n "$p" ]; then printf "  %-26s %5s%%  %7.1f us/txn\n" "$f" "$p" "$(echo "$p * $us / 100" | bc -l)"; fi
done
rm -f "$data" "$out"
