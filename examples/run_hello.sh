#!/usr/bin/env bash
# run_hello.sh — what `make run` executes: start sluice with the hello example applied, put a few
# records, show the handler's log lines as they fire, keep serving until Ctrl-C.
#
# Uses the defaults a user gets from `sluice serve`: 127.0.0.1:4566 and the data directory
# ./.sluice (relative to where `make run` runs, the repository root). BUILD picks the build dir;
# SLUICE_RUN_PORT another port (examples/hello/test.sh runs this script on a free one).
set -u

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in
    /*) SLUICE=$BUILD/sluice; SHOW=$SLUICE ;;
    *) SLUICE=$REPO/$BUILD/sluice; SHOW=./$BUILD/sluice ;;
esac
HOST=127.0.0.1
PORT=${SLUICE_RUN_PORT:-4566}
ENDPOINT=http://$HOST:$PORT
DATA=./.sluice
export SLUICE_ENDPOINT=$ENDPOINT

if [ -t 1 ]; then B=$'\033[1m'; G=$'\033[32m'; R=$'\033[31m'; N=$'\033[0m'; else B= G= R= N=; fi
say() { printf '%s==>%s %s\n' "$G" "$N" "$*"; }
die() { printf '%ssluice run:%s %s\n' "$R" "$N" "$*" >&2; exit 1; }

[ -x "$SLUICE" ] || die "$SLUICE not found: build it first with: make BUILD=$BUILD"

# Refuse early and clearly when something already listens on the port.
if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    if curl -sf --max-time 2 "$ENDPOINT/health" >/dev/null 2>&1; then
        die "port $PORT on $HOST is busy: a sluice daemon is already running there.
       Stop it (Ctrl-C in its terminal), or use it directly:
         $SHOW up examples/hello/sluice.json && $SHOW logs hello -f"
    fi
    die "port $PORT on $HOST is busy (another program listens there; LocalStack uses it too).
       Free the port, or run sluice by hand on another one:
         $SHOW serve --listen $HOST:4567 &
         SLUICE_ENDPOINT=http://$HOST:4567 $SHOW up examples/hello/sluice.json"
fi

mkdir -p "$DATA" || die "cannot create $DATA"
DAEMON_LOG=$DATA/daemon.log
say "starting ${B}sluice serve${N} on $ENDPOINT (data in $DATA, daemon log in $DAEMON_LOG)"
"$SLUICE" serve --listen "$HOST:$PORT" --data-dir "$DATA" >>"$DAEMON_LOG" 2>&1 </dev/null &
DAEMON=$!
LOGS=

stop() {
    trap - INT TERM
    echo
    [ -n "$LOGS" ] && kill "$LOGS" 2>/dev/null
    say "stopping sluice"
    kill -TERM "$DAEMON" 2>/dev/null   # it may have stopped already: Ctrl-C reaches it too
    wait "$DAEMON" 2>/dev/null
    say "stopped; the data stays in $DATA (streams, functions, mappings, logs) for the next run"
    exit 0
}
trap stop INT TERM

for _ in $(seq 1 100); do
    curl -sf --max-time 1 "$ENDPOINT/health" >/dev/null 2>&1 && break
    kill -0 "$DAEMON" 2>/dev/null || break
    sleep 0.1
done
if ! curl -sf --max-time 1 "$ENDPOINT/health" >/dev/null 2>&1; then
    kill -TERM "$DAEMON" 2>/dev/null
    tail -n 15 "$DAEMON_LOG" >&2
    die "the daemon did not start (log above)"
fi

say "applying ${B}examples/hello/sluice.json${N}"
"$SLUICE" up "$REPO/examples/hello/sluice.json" || { kill -TERM "$DAEMON"; wait "$DAEMON"; die "sluice up failed"; }

say "handler log (${B}sluice logs hello -f${N}):"
"$SLUICE" logs hello -f &
LOGS=$!

sleep 0.3
say "putting records (${B}sluice put greetings ... --key demo${N})"
STAMP="at $(date +%H:%M:%S)"
"$SLUICE" put greetings "world" "from make run" "$STAMP" --key demo >/dev/null \
    || say "put failed (see above)"

# Give the handler a moment to fire so the hints come after its lines.
for _ in $(seq 1 30); do
    "$SLUICE" logs hello 2>/dev/null | grep -qF "$STAMP" && break
    sleep 0.2
done
sleep 0.5

cat <<TIPS

${B}sluice is serving on $ENDPOINT${N} — Ctrl-C stops it. In another terminal, try:

  $SHOW put greetings "your text" --key you        # watch it appear above
  $SHOW tail greetings                              # follow the stream itself
  $SHOW top                                         # live rates, iterator age, durations
  $SHOW invoke hello --payload '{"Records":[]}'

  # the same daemon speaks the AWS APIs (any SDK with its endpoint set works too):
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
  aws --endpoint-url $ENDPOINT kinesis list-streams
  aws --endpoint-url $ENDPOINT kinesis put-record --stream-name greetings --partition-key aws --data hi
  aws --endpoint-url $ENDPOINT lambda list-event-source-mappings

  # more patterns, each with a README: examples/README.md
  $SHOW up examples/fan-out/sluice.json             # one function feeding another
  $SHOW up examples/poison-pill/sluice.json         # bisect + on-failure queue
  $SHOW up examples/partial-failure/sluice.json     # ReportBatchItemFailures
  $SHOW up examples/tumbling-window/sluice.json     # per-key counts per minute
  $SHOW up examples/native/sluice.json              # a handler in C
  $SHOW up examples/filtering/sluice.json           # FilterCriteria
  $SHOW up examples/ordering/sluice.json            # ParallelizationFactor, per-key order

TIPS

wait "$DAEMON"
rc=$?
[ -n "$LOGS" ] && kill "$LOGS" 2>/dev/null
if [ "$rc" -ne 0 ]; then
    tail -n 15 "$DAEMON_LOG" >&2
    die "the daemon exited with status $rc (log above)"
fi
