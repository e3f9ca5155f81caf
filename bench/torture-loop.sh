#!/bin/sh
# torture-loop.sh: the listener torture test many times in a row on one dialect, stopping at the
# first failure. A benchmark-style job, not CI (CI runs the test once per dialect, with -race).
#
#   EVENTFOLD_MYSQL_DSN=mysql://root@127.0.0.1:3306/ bench/torture-loop.sh mysql 200
#
# Arguments: the dialect subtest (default mysql) and the number of runs (default 200). The test
# binary is built once, so edits made while it runs do not change what is measured.
set -eu
dialect=${1:-mysql}
runs=${2:-200}
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
go test -c -o "$dir/listener.test" ./listener/
cd listener
start=$(date +%s)
status=passed
"$dir/listener.test" -test.run "^TestTorture\$/^${dialect}\$" -test.count="$runs" -test.failfast -test.v \
	>"$dir/log" 2>&1 || status=FAILED
grep -E '^(--- FAIL|    --- FAIL|FAIL|ok|PASS)|torture_test.go' "$dir/log" | tail -n 20
echo "TestTorture/$dialect: $status; $(grep -c "^    --- PASS" "$dir/log") runs passed in $(( $(date +%s) - start ))s (log: $dir/log)"
[ "$status" = passed ]
