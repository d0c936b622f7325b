#!/usr/bin/env bash
# `make bench`: runs every benchmark of tests/bench/ and prints its figures. Benchmarks hold the
# performance targets of the issues; they are not pass/fail tests. Machine caveat: 2 shared
# cores, noisy — compare medians and ratios, not single runs.
set -u
BUILD=${BUILD:-build}
export BUILD SLUICE_BIN=${SLUICE_BIN:-$PWD/$BUILD/sluice}
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    case "$b" in *_client) continue ;; esac   # helpers driven by the .sh benchmarks
    echo "==== $(basename "$b")"
    "$b" || echo "(exit status $?)"
done
for s in tests/bench/bench_*.sh; do
    [ -f "$s" ] || continue
    echo "==== $(basename "$s")"
    bash "$s" || echo "(exit status $?)"
done
