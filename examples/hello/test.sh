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
ex_ok "aws kinesis put-record reaches the same handler" \
    aws --endpoint-url "$SLUICE_ENDPOINT" kinesis put-record --stream-name greetings \
        --partition-key aws --data dave
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

ex_finish
