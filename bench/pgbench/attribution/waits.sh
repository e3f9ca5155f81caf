#!/usr/bin/env bash
# waits.sh SCRIPT [CLIENTS] [DB]: samples pg_stat_activity (80 times, ~5/s)
# while pgbench runs SCRIPT, and counts what the backends wait on.
set -euo pipefail
script=$1; c=${2:-16}; db=${3:-efattr}
out=$(mktemp /tmp/efattr-out.XXXXXX)
pgbench -n -M prepared -c "$c" -j 2 -T 25 -f "$script" "$db" >"$out" 2>&1 &
pb=$!
sleep 3
for _ in $(seq 80); do
  echo "SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-') || ':' || state FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'pgbench';"
  echo '\! sleep 0.15'
done | psql -d "$db" -Atq | sort | uniq -c | sort -rn
kill "$pb" 2>/dev/null || true; wait "$pb" 2>/dev/null || true; rm -f "$out"
