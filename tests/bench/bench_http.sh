#!/usr/bin/env bash
# bench_http.sh — HTTP-level figures for the Kinesis API of a real sluice daemon:
#   1. daemon start to first answered request (ms, median of 5) and idle RSS
#   2. PutRecords throughput with wrk (500 x 100-byte records per request, ~10 s): records/s
#   3. single PutRecord round trip over one keep-alive connection: p50 / p99
#   4. GetRecords drain of everything written in 2 over the stream's 4 shards: records/s
# Environment: SLUICE_BIN (default build/sluice), BUILD (build), BENCH_SECONDS (10),
# WRK_THREADS (2), WRK_CONNECTIONS (16), FSYNC (everysec). Figures only: nothing here fails on
# a threshold (the machine is shared); the exit status is non-zero only when a step breaks.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SLUICE_BIN=${SLUICE_BIN:-$PWD/$BUILD/sluice}
PYTHON=${PYTHON:-/usr/bin/python3}
SECS=${BENCH_SECONDS:-10}
THREADS=${WRK_THREADS:-2}
CONNS=${WRK_CONNECTIONS:-16}
FSYNC=${FSYNC:-everysec}
CLIENT=${BENCH_CLIENT:-$BUILD/bench/bench_http_client}

[ -x "$SLUICE_BIN" ] || { echo "bench_http: no daemon at $SLUICE_BIN (make first)" >&2; exit 1; }
if [ ! -x "$CLIENT" ]; then
    make -s BUILD="$BUILD" "$CLIENT" >/dev/null ||
        { echo "bench_http: cannot build $CLIENT" >&2; exit 1; }
fi
command -v wrk >/dev/null || { echo "bench_http: wrk not installed" >&2; exit 1; }

echo "== sluice HTTP benchmark ($(nproc) cores, fsync=$FSYNC)"

# 1. start-up time and idle memory (Python helper shared with the e2e tests)
SLUICE_BIN="$SLUICE_BIN" "$PYTHON" - <<'PY' || exit 1
import os, statistics, sys
sys.path.insert(0, "tests/e2e")
from sluice_test import Daemon
times, rss = [], []
for _ in range(5):
    d = Daemon(["--quiet"])
    d.start()
    times.append(d.startup_ms)
    rss.append(d.rss_kib())
    d.stop()
print("daemon start to first answered request: %.1f ms (median of 5; min %.1f, max %.1f)"
      % (statistics.median(times), min(times), max(times)))
print("idle RSS: %.1f MiB" % (statistics.median(rss) / 1024.0))
PY

PORT=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
DATA=$(mktemp -d /tmp/sluice-bench-XXXXXX)
"$SLUICE_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" --transition-ms 0 \
    --fsync "$FSYNC" --quiet >"$DATA.log" 2>&1 &
PID=$!
cleanup() {
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    rm -rf "$DATA" "$DATA.log"
}
trap cleanup EXIT

for _ in $(seq 1 500); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
    sleep 0.01
done

AUTH="AWS4-HMAC-SHA256 Credential=b/20250101/us-east-1/kinesis/aws4_request"
AUTH="$AUTH, SignedHeaders=host, Signature=00"
kcall() {   # op json
    curl -sf -X POST "http://127.0.0.1:$PORT/" -H "X-Amz-Target: Kinesis_20131202.$1" \
        -H "Content-Type: application/x-amz-json-1.1" -H "X-Amz-Date: 20250101T000000Z" \
        -H "Authorization: $AUTH" --data-binary "$2"
}
kcall CreateStream '{"StreamName":"bench","ShardCount":4}' >/dev/null ||
    { echo "bench_http: CreateStream failed" >&2; exit 1; }
kcall CreateStream '{"StreamName":"lat","ShardCount":1}' >/dev/null || exit 1

# 2. throughput
SLUICE_BENCH_STREAM=bench wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" \
    -s tests/bench/put_records.lua "http://127.0.0.1:$PORT/" |
    grep -E "^put_records:|Non-2xx|Socket errors" || exit 1

# 3. latency
"$CLIENT" latency "$PORT" lat 5000 || exit 1

# 4. drain
"$CLIENT" drain "$PORT" bench 4 || exit 1

RSS=$(awk '/VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$PID/status)
echo "daemon RSS right after the run: $RSS"
# idle again, with everything above stored: RSS must not grow with the amount stored
STORED=$(du -sh "$DATA" 2>/dev/null | cut -f1)
sleep 11
RSS=$(awk '/VmRSS/{printf "%.1f MiB", $2/1024}' /proc/$PID/status)
echo "idle RSS with $STORED stored (11 s after the load): $RSS"
