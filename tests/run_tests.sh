#!/usr/bin/env bash
# Runs every suite of `make test` and sums the counts into one closing line
# "N passed, M failed". Each suite is a program that prints either cmocka's
# "[  PASSED  ] N test(s)" / "[  FAILED  ] M test(s)" lines or a line
# "N passed, M failed" of its own; a suite that exits non-zero without any
# count is one failure. Set ONLY=pattern to run a subset.
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
export BUILD PYTHON
export SLUICE_BIN=${SLUICE_BIN:-$PWD/$BUILD/sluice}
ONLY=${ONLY:-}
total_pass=0
total_fail=0
failed_suites=()
logdir=$BUILD/test-logs
mkdir -p "$logdir"

run_suite() {   # name, command...
    local name=$1; shift
    if [ -n "$ONLY" ] && [[ "$name" != *$ONLY* ]]; then return; fi
    local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local start=$SECONDS
    "$@" >"$log" 2>&1 </dev/null
    local rc=$?
    local p f line
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | awk '{s+=$4} END{print s+0}')
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | awk '{s+=$4} END{print s+0}')
    line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        line=${line#*: }
        p=$((p + $(echo "$line" | awk '{print $1}')))
        f=$((f + $(echo "$line" | awk '{print $3}')))
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    printf '%-44s %4d passed, %d failed  (%ds)\n' "$name" "$p" "$f" $((SECONDS - start))
    if [ "$f" -ne 0 ]; then
        failed_suites+=("$name")
        echo "---- last lines of $log"
        tail -n 40 "$log"
        echo "----"
    fi
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_suite "unit/$(basename "$t")" "$t"
done
for t in tests/crash/*.sh; do
    [ -f "$t" ] || continue
    run_suite "crash/$(basename "$t")" bash "$t"
done
for t in tests/e2e/[0-9]*.py; do
    [ -f "$t" ] || continue
    run_suite "e2e/$(basename "$t")" "$PYTHON" "$t"
done
for t in tests/e2e/[0-9]*.sh; do
    [ -f "$t" ] || continue
    run_suite "e2e/$(basename "$t")" bash "$t"
done
for t in examples/*/test.sh; do
    [ -f "$t" ] || continue
    run_suite "example/$(basename "$(dirname "$t")")" bash "$t"
done
if [ -f tests/fuzz/run_short.sh ]; then
    run_suite "fuzz/short" bash tests/fuzz/run_short.sh
fi

if [ ${#failed_suites[@]} -ne 0 ]; then
    echo "failed suites: ${failed_suites[*]}"
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
