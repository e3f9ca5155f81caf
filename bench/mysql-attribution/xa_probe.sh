#!/bin/bash
# Writes, to stdout, the procedures that measure migration 00020's XA probe (for
# EVENTFOLD_MYSQL_ATTRIBUTION_PROCS): xa_one, a copy of 00020's eventfold_append_one, and
# noxa_one, the same without the probe block (the BEGIN ... /*M! ... XA START ... */ END).
#   bench/mysql-attribution/xa_probe.sh > /tmp/procs.sql   (from the repository root)
set -euo pipefail
F=sql/mysql/00020_refuse_xa_appends.sql
one=$(awk '/^CREATE PROCEDURE eventfold_append_one\(/{on=1} on{print} on&&/^END$/{exit}' "$F")
grep -q "XA START 'eventfold-probe'" <<<"$one"
sed 's/^CREATE PROCEDURE eventfold_append_one(/CREATE PROCEDURE xa_one(/' <<<"$one"
echo ';;'
# drop the probe: from the BEGIN before "/*M! DECLARE CONTINUE HANDLER FOR 1400" to its END;
sed 's/^CREATE PROCEDURE eventfold_append_one(/CREATE PROCEDURE noxa_one(/' <<<"$one" |
  awk '/^    BEGIN$/{held=$0; next} held!=""{ if ($0 ~ /DECLARE CONTINUE HANDLER FOR 1400/) {skip=1; held=""; next} print held; held="" } skip{ if ($0 ~ /^    END;$/) skip=0; next } {print}'
