#!/usr/bin/env bash
# hello: records put on the stream reach the handler in order and show in its log.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

ex_start
ex_up "$EX_DIR/sluice.json"

ex_ok "put three records with the CLI" sx put greetings alice bob carol --key people
ex_wait 15 ex_has_lines hello 'INFO.hello carol' 1 \
    && ex_pass "the handler fired for the records" \
    || ex_fail "the handler fired for the records" "$(ex_logs hello | tail -n 20)"

got=$(ex_logs hello | sed -n 's/.*INFO.hello \([a-z]*\) (key=people.*/\1/p' | tr '\n' ' ')
ex_eq "records arrive once each, in put order, with the partition key" "alice bob carol " "$got"
framed() {
    local log starts
    log=$(ex_logs hello)
    starts=$(printf '%s\n' "$log" | grep -c '^START RequestId: ')
    [ "$starts" -ge 1 ] &&
        [ "$(printf '%s\n' "$log" | grep -c '^END RequestId: ')" = "$starts" ] &&
        [ "$(printf '%s\n' "$log" | grep -c '^REPORT RequestId: ')" = "$starts" ]
}
ex_ok "every invocation is framed with START/END/REPORT" framed

# The same stream, written by the AWS CLI: the handler does not care who the producer is.
# (fileb:// passes raw bytes with AWS CLI v1 and v2 alike.)
printf 'dave' >"$EX_TMP/dave.txt"
ex_ok "aws kinesis put-record reaches the same handler" \
    aws --endpoint-url "$SLUICE_ENDPOINT" kinesis put-record --stream-name greetings \
        --partition-key aws --data "fileb://$EX_TMP/dave.txt"
ex_wait 15 ex_has_lines hello 'INFO.hello dave \(key=aws' 1 \
    && ex_pass "the aws-cli record is logged" \
    || ex_fail "the aws-cli record is logged" "$(ex_logs hello | tail -n 10)"

# sluice up is idempotent: applying the manifest again creates nothing new.
out=$(sx up "$EX_DIR/sluice.json" 2>&1)
ex_eq "sluice up again reports no changes" "no changes" "$out"
n=$(aws --endpoint-url "$SLUICE_ENDPOINT" lambda list-event-source-mappings \
        --function-name hello --output json | ex_json 'len(d["EventSourceMappings"])')
ex_eq "still exactly one mapping after re-applying the manifest" 1 "$n"

# A direct invoke with a hand-written event (what `sluice invoke` is for).
payload='{"Records":[{"kinesis":{"partitionKey":"k","sequenceNumber":"1","data":"ZXZl"},"eventID":"shardId-000000000000:1"}]}'
out=$(sx invoke hello --payload "$payload" 2>&1)
case "$out" in
    *'"processed"'*1*) ex_pass "sluice invoke returns the handler's result" ;;
    *) ex_fail "sluice invoke returns the handler's result" "$out" ;;
esac
ex_wait 10 ex_has_lines hello 'INFO.hello eve \(key=k' 1 \
    && ex_pass "the direct invocation is logged too" \
    || ex_fail "the direct invocation is logged too" "$(ex_logs hello | tail -n 10)"

# `sluice logs -f` follows the log as invocations happen (what `make run` shows).
sx logs hello -f >"$EX_TMP/follow.txt" 2>&1 &
follow=$!
ex_ok "put a record while following the log" sx put greetings frank --key f
ex_wait 10 grep -q 'INFO.hello frank (key=f' "$EX_TMP/follow.txt" \
    && ex_pass "sluice logs -f shows the new invocation" \
    || ex_fail "sluice logs -f shows the new invocation" "$(tail -n 5 "$EX_TMP/follow.txt")"
kill "$follow" 2>/dev/null
wait "$follow" 2>/dev/null

# `make run` (examples/run_hello.sh) end to end, on a free port and in a scratch directory: it
# starts its own daemon, applies this example, shows the handler firing, serves until stopped.
out=$(SLUICE_RUN_PORT=$EX_PORT BUILD=$(dirname "$SLUICE_BIN") bash "$EX_REPO/examples/run_hello.sh" 2>&1)
rc=$?
case "$rc:$out" in
    1:*"port $EX_PORT on 127.0.0.1 is busy: a sluice daemon is already running there"*)
        ex_pass "make run explains that the port is taken by a running sluice" ;;
    *) ex_fail "make run explains that the port is taken by a running sluice" "rc=$rc" "$out" ;;
esac
run_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$EX_TMP/run"
( cd "$EX_TMP/run" && SLUICE_RUN_PORT=$run_port BUILD=$(dirname "$SLUICE_BIN") \
      exec bash "$EX_REPO/examples/run_hello.sh" >"$EX_TMP/run.txt" 2>&1 </dev/null ) &
run_pid=$!
ex_wait 20 grep -q "sluice is serving on http://127.0.0.1:$run_port" "$EX_TMP/run.txt" \
    && ex_pass "make run starts serving and prints what to try next" \
    || ex_fail "make run starts serving and prints what to try next" "$(tail -n 20 "$EX_TMP/run.txt")"
ex_ok "make run shows the handler's log lines for the records it put" \
    grep -q 'INFO.hello from make run (key=demo' "$EX_TMP/run.txt"
ex_ok "make run keeps its data in ./.sluice" test -f "$EX_TMP/run/.sluice/catalog.db"
kill -TERM "$run_pid"
stopped() { ! kill -0 "$run_pid" 2>/dev/null; }
ex_wait 10 stopped && ex_pass "make run stops on Ctrl-C/SIGTERM" \
    || { ex_fail "make run stops on Ctrl-C/SIGTERM"; kill -KILL "$run_pid"; }
wait "$run_pid" 2>/dev/null
ex_eq "make run exits 0 and stopped its daemon" "0 closed" \
    "$? $( (exec 3<>"/dev/tcp/127.0.0.1/$run_port") 2>/dev/null && echo open || echo closed)"

ex_finish
