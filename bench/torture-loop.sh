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
bin=$(mktemp -d)/listener.test
go test -c -o "$bin" ./listener/
cd listener
start=$(date +%s)
"$bin" -test.run "^TestTorture\$/^${dialect}\$" -test.count="$runs" -test.failfast -test.v 2>&1 |
	grep -E '^(--- FAIL|    --- FAIL|FAIL|ok|PASS)|torture_test.go' | tail -n 20
echo "$runs runs of TestTorture/$dialect took $(( $(date +%s) - start ))s"
