#!/usr/bin/env bash
# Short bounded libFuzzer runs of every target in tests/fuzz/ (part of `make test`).
# FUZZ_SECONDS per target (default 15). Prints "N passed, M failed" (one per target).
set -u
BUILD=${BUILD:-build}
secs=${FUZZ_SECONDS:-15}
pass=0
fail=0
for src in tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src" .c)
    bin=$BUILD/fuzz/$name
    if ! make -s BUILD="$BUILD" "$bin" >/dev/null 2>"$BUILD/fuzz-$name.build.log"; then
        echo "FAIL $name: build failed"; cat "$BUILD/fuzz-$name.build.log"; fail=$((fail + 1)); continue
    fi
    corpus=$(mktemp -d)
    [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
    if "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "$corpus" \
        >"$BUILD/fuzz-$name.log" 2>&1; then
        echo "ok   $name ($(grep -o 'stat::number_of_executed_units: [0-9]*' "$BUILD/fuzz-$name.log" | awk '{print $2}') runs)"
        pass=$((pass + 1))
    else
        echo "FAIL $name"; tail -n 30 "$BUILD/fuzz-$name.log"; fail=$((fail + 1))
    fi
    rm -rf "$corpus"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
