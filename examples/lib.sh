# examples/lib.sh — shared helpers for examples/*/test.sh (sourced, not run).
#
# A test sources this file, calls ex_start (a private daemon on a free loopback port with a
# throw-away data directory), drives it with the sluice CLI (SLUICE_ENDPOINT is exported, so
# plain `sx ...` talks to that daemon), checks what the example promises with ex_ok / ex_eq /
# ex_wait, and ends with ex_finish, which stops the daemon (SIGTERM) and prints the closing line
# "N passed, M failed" that tests/run_tests.sh sums (exit status 1 when anything failed).
#
# Environment: SLUICE_BIN (absolute path of the sluice binary; default <repo>/$BUILD/sluice),
# BUILD (build directory, default build), EX_KEEP=1 keeps the temporary directory for debugging.

set -u

EX_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in
    /*) EX_BUILD_ABS=$BUILD ;;
    *) EX_BUILD_ABS=$EX_REPO/$BUILD ;;
esac
export BUILD
SLUICE_BIN=${SLUICE_BIN:-$EX_BUILD_ABS/sluice}
export SLUICE_BIN

EX_PASS=0
EX_FAIL=0
EX_PID=
EX_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sluice-example.XXXXXX")
EX_DATA=$EX_TMP/data
EX_LOG=$EX_TMP/daemon.log

ex_cleanup() {
    if [ -n "$EX_PID" ] && kill -0 "$EX_PID" 2>/dev/null; then
        kill -TERM "$EX_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$EX_PID" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$EX_PID" 2>/dev/null
    fi
    if [ "${EX_KEEP:-0}" = 1 ]; then echo "kept $EX_TMP"; else rm -rf "$EX_TMP"; fi
}
trap ex_cleanup EXIT

# ---- checks ------------------------------------------------------------------------------------

ex_pass() { EX_PASS=$((EX_PASS + 1)); echo "ok   - $1"; }
ex_fail() { EX_FAIL=$((EX_FAIL + 1)); echo "FAIL - $1"; shift; [ $# -gt 0 ] && printf '       %s\n' "$@"; return 0; }

# ex_ok DESCRIPTION COMMAND...: passes when the command exits 0.
ex_ok() {
    local what=$1; shift
    local out
    if out=$("$@" 2>&1); then ex_pass "$what"; else ex_fail "$what" "command: $*" "output: $out"; fi
}

# ex_eq DESCRIPTION EXPECTED ACTUAL
ex_eq() {
    if [ "$2" = "$3" ]; then ex_pass "$1"; else ex_fail "$1" "expected: $2" "actual:   $3"; fi
}

# ex_wait SECONDS COMMAND...: runs the command every 0.2 s until it exits 0; returns 1 on timeout.
ex_wait() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    while :; do
        "$@" >/dev/null 2>&1 && return 0
        [ $SECONDS -ge $end ] && return 1
        sleep 0.2
    done
}

# ---- the daemon and the CLI --------------------------------------------------------------------

# sx ARGS...: the sluice CLI against this test's daemon.
sx() { "$SLUICE_BIN" "$@"; }

# ex_start [serve options...]: starts the daemon on 127.0.0.1:<free port>, exports SLUICE_ENDPOINT.
ex_start() {
    if [ ! -x "$SLUICE_BIN" ]; then
        ex_fail "sluice binary exists" "not executable: $SLUICE_BIN"
        ex_finish
    fi
    : >"$EX_LOG"
    "$SLUICE_BIN" serve --listen 127.0.0.1:0 --data-dir "$EX_DATA" "$@" >"$EX_LOG" 2>&1 </dev/null &
    EX_PID=$!
    local port= i
    for i in $(seq 1 150); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$EX_LOG" | head -n 1)
        [ -n "$port" ] && break
        if ! kill -0 "$EX_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [ -z "$port" ]; then
        ex_fail "daemon starts" "$(tail -n 20 "$EX_LOG")"
        ex_finish
    fi
    EX_PORT=$port
    SLUICE_ENDPOINT=http://127.0.0.1:$port
    export SLUICE_ENDPOINT EX_PORT
    # The AWS CLI, for the checks that use it, talks to the same daemon without real credentials.
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
    export AWS_PAGER=""
    ex_wait 10 curl -sf "$SLUICE_ENDPOINT/health" || { ex_fail "daemon answers /health"; ex_finish; }
}

# ex_up MANIFEST: applies a manifest with `sluice up` and checks that it succeeded.
ex_up() {
    local out
    if out=$(sx up "$1" 2>&1); then
        ex_pass "sluice up $(basename "$(dirname "$1")")/$(basename "$1")"
    else
        ex_fail "sluice up $1" "$out"
        ex_finish
    fi
    printf '%s\n' "$out" | sed 's/^/       | /'
}

# ex_logs FUNCTION: the function's log so far (START/END/REPORT framing and handler lines).
ex_logs() { sx logs "$1" 2>/dev/null; }

# ex_count_lines FUNCTION PATTERN: number of log lines of FUNCTION matching the ERE PATTERN.
ex_count_lines() { ex_logs "$1" | grep -cE -- "$2"; }

# ex_has_lines FUNCTION PATTERN N: true when at least N log lines match.
ex_has_lines() { [ "$(ex_count_lines "$1" "$2")" -ge "$3" ]; }

# ex_wait_idle FUNCTION: waits until the function's log stops growing for 1.5 s (max 15 s), so
# counts taken afterwards include every invocation the test provoked (and would show extra ones).
ex_wait_idle() {
    local last=-1 cur stable=0 end=$((SECONDS + 15))
    while [ $SECONDS -lt $end ]; do
        cur=$(ex_logs "$1" | wc -c)
        if [ "$cur" = "$last" ]; then
            stable=$((stable + 1))
            [ $stable -ge 3 ] && return 0
        else
            stable=0
        fi
        last=$cur
        sleep 0.5
    done
    return 1
}

# ex_json EXPR: evaluates a Python expression over the JSON document on stdin (bound to `d`)
# and prints the result (strings plain, everything else as JSON).
ex_json() {
    /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
v = eval(sys.argv[1], {"d": d, "len": len, "sorted": sorted, "set": set, "sum": sum})
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# ex_finish: stops the daemon, prints the count line, exits 0 only when nothing failed.
ex_finish() {
    if [ -n "$EX_PID" ] && kill -0 "$EX_PID" 2>/dev/null; then
        kill -TERM "$EX_PID"
        local i
        for i in $(seq 1 100); do kill -0 "$EX_PID" 2>/dev/null || break; sleep 0.05; done
        if kill -0 "$EX_PID" 2>/dev/null; then
            ex_fail "daemon stops on SIGTERM within 5 s"
            kill -KILL "$EX_PID" 2>/dev/null
        else
            wait "$EX_PID" 2>/dev/null
            local rc=$?
            ex_eq "daemon exits 0 on SIGTERM" 0 "$rc"
        fi
        EX_PID=
    fi
    if [ "$EX_FAIL" -ne 0 ]; then
        echo "---- daemon log (last 30 lines)"
        tail -n 30 "$EX_LOG" 2>/dev/null
    fi
    echo "$EX_PASS passed, $EX_FAIL failed"
    [ "$EX_FAIL" -eq 0 ] && exit 0
    exit 1
}
