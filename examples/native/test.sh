#!/usr/bin/env bash
# native: the C handler is built by its own Makefile (static, against libsluice_handler.a),
# deployed by `sluice up`, fed by a mapping, and writes alerts through the host call.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

# Work on a copy so the test never leaves a built binary in the source tree.
cp -r "$EX_DIR" "$EX_TMP/example"
rm -f "$EX_TMP/example/thermo/handler"
# The copy lives outside the repository: point its Makefile at this build's library.
export SLUICE_LIB=$EX_BUILD_ABS SLUICE_INCLUDE=$EX_REPO/functions
ex_ok "the handler library exists in $BUILD" test -f "$EX_BUILD_ABS/libsluice_handler.a"

ex_ok "the example's Makefile builds the handler" make -s -C "$EX_TMP/example/thermo"
ex_ok "the handler is a static executable" \
    bash -c "file '$EX_TMP/example/thermo/handler' | grep -q 'statically linked'"
rm -f "$EX_TMP/example/thermo/handler"

ex_start
ex_up "$EX_TMP/example/sluice.json"
ex_ok "sluice up ran the manifest's build step" test -x "$EX_TMP/example/thermo/handler"

ex_ok "put readings" sx put readings 'boiler-1,72.0' 'boiler-1,91.5' 'garbage' --key boiler-1
ex_ok "put a reading for another sensor" sx put readings 'oven-2,230' --key oven-2
ex_wait 20 ex_has_lines thermo 'reading oven-2 230\.0 C' 1 \
    && ex_pass "the native handler logged the readings" \
    || ex_fail "the native handler logged the readings" "$(ex_logs thermo | tail -n 20)"
ex_wait_idle thermo
ex_eq "each valid reading logged once" 3 "$(ex_count_lines thermo 'reading (boiler-1|oven-2) ')"
ex_eq "the malformed record was skipped with a warning" 1 "$(ex_count_lines thermo 'malformed reading at [0-9]+ skipped')"
ex_eq "two readings above THRESHOLD=80 raised alerts" 2 "$(ex_count_lines thermo 'ALERT ')"

# The alerts went through sluice_put_record into the "alerts" stream.
it=$(aws --endpoint-url "$SLUICE_ENDPOINT" kinesis get-shard-iterator --stream-name alerts \
        --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --output json \
     | ex_json 'd["ShardIterator"]')
alerts=$(aws --endpoint-url "$SLUICE_ENDPOINT" kinesis get-records --shard-iterator "$it" --output json \
     | ex_json '" ".join(sorted(__import__("base64").b64decode(r["Data"]).decode() + "@" + r["PartitionKey"] for r in d["Records"]))')
ex_eq "the alerts stream holds both alerts, keyed by sensor" \
    '{"sensor":"boiler-1","celsius":91.5,"threshold":80.0}@boiler-1 {"sensor":"oven-2","celsius":230.0,"threshold":80.0}@oven-2' \
    "$alerts"

# A direct invoke returns the handler's JSON result.
payload='{"Records":[{"kinesis":{"partitionKey":"p","sequenceNumber":"7","data":"Zm9vLDEuNQ=="},"eventID":"shardId-000000000000:7"}]}'
out=$(sx invoke thermo --payload "$payload" 2>&1)
case "$out" in
    *'"readings":1'*'"alerts":0'*) ex_pass "sluice invoke thermo returns its result" ;;
    *) ex_fail "sluice invoke thermo returns its result" "$out" ;;
esac

ex_finish
