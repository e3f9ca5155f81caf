#!/bin/bash
# Server instructions per dispatch-shaped transaction, variant by variant, on a private
# MariaDB run under callgrind (see README.md). Needs root (the server runs as user mysql),
# mariadb-install-db, mariadbd and valgrind. Never touches the shared server.
#   bench/mysql-attribution/run.sh [variants]     (from the repository root)
#   PROCS=file bench/mysql-attribution/run.sh ...  (procedures from file instead of variants.py)
set -euo pipefail
VARIANTS=${1:-raw,ev_direct,empty_raw,one,p_full,p_nosp,p_nogate,p_nostreams,p_nointx,p_bare,pb_nores,pb_nodecl,lean_one}
PORT=${PORT:-3407}
HERE=$(cd "$(dirname "$0")" && pwd)
D=$(mktemp -d /tmp/efattr.XXXXXX)
chmod 777 "$D"
mariadb-install-db --no-defaults --datadir="$D/data" --user=mysql --auth-root-authentication-method=normal --skip-test-db >"$D/install.log" 2>&1
chown -R mysql:mysql "$D/data"
setsid runuser -u mysql -- valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$D/callgrind.out.%p" \
  /usr/sbin/mariadbd --no-defaults --datadir="$D/data" --port="$PORT" --bind-address=127.0.0.1 --socket="$D/sock" \
  --innodb-buffer-pool-size=128M --innodb-buffer-pool-size-max=128M --innodb-use-native-aio=0 \
  --innodb-flush-log-at-trx-commit=1 --skip-log-bin --performance-schema=OFF >"$D/server.log" 2>&1 &
for _ in $(seq 1 60); do
  mysql -h127.0.0.1 -P"$PORT" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 2
done
PID=$(ls "$D" | sed -n 's/^callgrind\.out\.\([0-9]*\)$/\1/p' | head -1)
trap 'runuser -u mysql -- callgrind_control -k "$PID" >/dev/null 2>&1 || true; rm -rf "$D"' EXIT
if [ -n "${PROCS:-}" ]; then cp "$PROCS" "$D/procs.sql"; else python3 "$HERE/variants.py" >"$D/procs.sql"; fi
EVENTFOLD_MYSQL_DSN="mysql://root@127.0.0.1:$PORT/" \
EVENTFOLD_MYSQL_ATTRIBUTION="$VARIANTS" EVENTFOLD_MYSQL_ATTRIBUTION_PROCS="$D/procs.sql" \
EVENTFOLD_MYSQL_ATTRIBUTION_CALLGRIND="$PID" EVENTFOLD_MYSQL_ATTRIBUTION_CALLGRIND_DIR="$D" \
  go test -count=1 -timeout 60m -run 'TestAppendAttribution$' -v ./internal/dialect/mysql | grep -E 'per transaction|FAIL|Error|ok'
