#!/usr/bin/env bash
# poison-pill: bisect isolates the one bad record; it lands in the on-failure queue with its
# batch info; every good record is processed and the shard keeps going.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)
DLQ=arn:aws:sqs:us-east-1:000000000000:payments-dlq

ex_start
ex_up "$EX_DIR/sluice.json"

ex_ok "put 8 payments, the 5th one malformed" sx put payments \
    '{"id":"p1","amount":10}' '{"id":"p2","amount":20}' '{"id":"p3","amount":30}' \
    '{"id":"p4","amount":40}' 'NOT-JSON' '{"id":"p6","amount":60}' \
    '{"id":"p7","amount":70}' '{"id":"p8","amount":80}' --key merchant-1

# The poison pill's sequence number, read back from the stream with the AWS CLI.
it=$(aws --endpoint-url "$SLUICE_ENDPOINT" kinesis get-shard-iterator --stream-name payments \
        --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --output json \
     | ex_json 'd["ShardIterator"]')
poison=$(aws --endpoint-url "$SLUICE_ENDPOINT" kinesis get-records --shard-iterator "$it" --output json \
     | ex_json '[r["SequenceNumber"] for r in d["Records"] if r["Data"] == "Tk9ULUpTT04="][0]')
ex_ok "the poison pill's sequence number is known ($poison)" test -n "$poison"

dlq_messages() { sx dlq read "$DLQ" 2>/dev/null | grep '^{'; }
dlq_has() { [ "$(dlq_messages | wc -l)" -ge "$1" ]; }
ex_wait 25 dlq_has 1 \
    && ex_pass "an invocation record reached the on-failure queue" \
    || ex_fail "an invocation record reached the on-failure queue" "$(sx dlq read "$DLQ" 2>&1 | tail -n 5)" \
        "$(ex_logs ingest | grep -v '^REPORT' | tail -n 20)"
ex_wait_idle ingest

msgs=$(dlq_messages)
ex_eq "exactly one message in the queue" 1 "$(printf '%s\n' "$msgs" | grep -c '^{')"
msg=$(printf '%s\n' "$msgs" | head -n 1)
ex_eq "condition is RetryAttemptsExhausted" RetryAttemptsExhausted \
    "$(printf '%s' "$msg" | ex_json 'd["requestContext"]["condition"]')"
ex_eq "the discarded batch is the poison pill alone (batchSize 1)" 1 \
    "$(printf '%s' "$msg" | ex_json 'd["KinesisBatchInfo"]["batchSize"]')"
ex_eq "startSequenceNumber is the poison pill" "$poison" \
    "$(printf '%s' "$msg" | ex_json 'd["KinesisBatchInfo"]["startSequenceNumber"]')"
ex_eq "endSequenceNumber is the poison pill" "$poison" \
    "$(printf '%s' "$msg" | ex_json 'd["KinesisBatchInfo"]["endSequenceNumber"]')"
ex_eq "shardId and streamArn name the source" \
    "shardId-000000000000 arn:aws:kinesis:us-east-1:000000000000:stream/payments" \
    "$(printf '%s' "$msg" | ex_json 'd["KinesisBatchInfo"]["shardId"] + " " + d["KinesisBatchInfo"]["streamArn"]')"
ex_eq "functionArn names the function" "arn:aws:lambda:us-east-1:000000000000:function:ingest" \
    "$(printf '%s' "$msg" | ex_json 'd["requestContext"]["functionArn"]')"
ex_eq "the last invoke was a function error" Unhandled \
    "$(printf '%s' "$msg" | ex_json 'd["responseContext"]["functionError"]')"
ex_ok "approximateInvokeCount >= 1 + MaximumRetryAttempts" \
    test "$(printf '%s' "$msg" | ex_json 'd["requestContext"]["approximateInvokeCount"]')" -ge 2

paid=$(ex_logs ingest | sed -n 's/.*INFO.paid \(p[0-9]\) .*/\1/p' | sort -u | tr '\n' ' ')
ex_eq "all seven good payments were processed" "p1 p2 p3 p4 p6 p7 p8 " "$paid"

# The shard is not blocked: later records flow.
ex_ok "put a payment after the poison pill" sx put payments '{"id":"p9","amount":90}' --key merchant-1
ex_wait 15 ex_has_lines ingest 'INFO.paid p9 90\.00' 1 \
    && ex_pass "the shard moved past the poison pill" \
    || ex_fail "the shard moved past the poison pill" "$(ex_logs ingest | tail -n 10)"
ex_eq "still exactly one message in the queue" 1 "$(dlq_messages | wc -l)"

ex_finish
