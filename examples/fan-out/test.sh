#!/usr/bin/env bash
# fan-out: enrich (on "orders") writes to "orders-enriched"; audit (its own mapping) sees the
# enriched records.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

ex_start
ex_up "$EX_DIR/sluice.json"

ex_ok "put three orders (two customers)" sx put orders \
    '{"id":"o-1","customer":"ada","qty":3,"price":2.5}' \
    '{"id":"o-3","customer":"ada","qty":40,"price":3}' --key ada
ex_ok "put an order for another customer" sx put orders \
    '{"id":"o-2","customer":"bob","qty":2,"price":12}' --key bob

ex_wait 20 ex_has_lines audit 'INFO.audit order=' 3 \
    && ex_pass "audit received three enriched orders" \
    || ex_fail "audit received three enriched orders" "enrich log:" "$(ex_logs enrich | tail -n 15)" \
        "audit log:" "$(ex_logs audit | tail -n 15)"

ex_ok "o-1 enriched: total 7.50, tier small" ex_has_lines audit 'order=o-1 customer=ada total=7\.50 tier=small' 1
ex_ok "o-2 enriched: total 24.00, tier medium" ex_has_lines audit 'order=o-2 customer=bob total=24\.00 tier=medium' 1
ex_ok "o-3 enriched: total 120.00, tier large" ex_has_lines audit 'order=o-3 customer=ada total=120\.00 tier=large' 1
ada=$(ex_logs audit | sed -n 's/.*audit order=\(o-[0-9]\) customer=ada.*/\1/p' | tr '\n' ' ')
ex_eq "one customer's orders stay in order across both hops" "o-1 o-3 " "$ada"
ex_ok "enrich wrote with one PutRecords per batch" ex_has_lines enrich 'forwarded [0-9]+ enriched order' 1

# The intermediate stream is a normal stream: read it with the AWS CLI like any other.
it=$(aws --endpoint-url "$SLUICE_ENDPOINT" kinesis get-shard-iterator --stream-name orders-enriched \
        --shard-id shardId-000000000000 --shard-iterator-type TRIM_HORIZON --output json \
     | ex_json 'd["ShardIterator"]')
n=$(aws --endpoint-url "$SLUICE_ENDPOINT" kinesis get-records --shard-iterator "$it" --output json \
     | ex_json 'len(d["Records"])')
ex_eq "orders-enriched holds exactly three records" 3 "$n"

ex_wait_idle audit
ex_eq "no record was delivered twice" 3 "$(ex_count_lines audit 'INFO.audit order=')"

ex_finish
