#!/usr/bin/env bash
# 10_kill_appender.sh — SIGKILL a shard-log appender at random moments, then verify.
#
# Each cycle starts tests/tools/broker_crash_appender on the same shard directory (it appends
# random-size batches of counter-derived records and records the acknowledged counter after
# every append), kills it with SIGKILL after 10-200 ms, and runs the tool's verify mode: reopen
# (torn tail truncated), every acknowledged record present, in order, consecutive, intact, no
# corruption reported. One pass/fail per cycle; the last line is "N passed, M failed".
set -u
BUILD=${BUILD:-build}
CYCLES=${CYCLES:-50}
TOOL=$BUILD/tools/broker_crash_appender
if [ ! -x "$TOOL" ]; then
    if ! make -s BUILD="$BUILD" "$TOOL" >/dev/null; then
        echo "cannot build $TOOL"
        echo "0 passed, 1 failed"
        exit 1
    fi
fi
work=$(mktemp -d /tmp/sluice_crash10.XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0
fail=0
for i in $(seq 1 "$CYCLES"); do
    seed=$(( (RANDOM << 15 | RANDOM) * 3 + i % 3 ))   # i % 3 rotates the fsync policy
    "$TOOL" append "$work/shard" "$work/ack" "$seed" 2>"$work/append.err" &
    pid=$!
    sleep "$(printf '0.%03d' $((10 + RANDOM % 191)))"
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    st=$?
    if [ "$st" -ne 137 ]; then
        # The appender stopped on its own before the kill: an append failed.
        echo "cycle $i: appender exited with $st: $(cat "$work/append.err")"
        fail=$((fail + 1))
        continue
    fi
    if out=$("$TOOL" verify "$work/shard" "$work/ack" 2>&1); then
        pass=$((pass + 1))
        [ -n "${VERBOSE:-}" ] && echo "cycle $i: $out"
    else
        echo "cycle $i: $out"
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
