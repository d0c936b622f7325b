#!/usr/bin/env bash
# filtering: only records matching one of the FilterCriteria patterns reach the function.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

ex_start
ex_up "$EX_DIR/sluice.json"

ex_ok "put a mix of shop events" sx put shop-events \
    '{"type":"view","id":"v1","page":"/"}' \
    '{"type":"order","id":"o1","amount":25}' \
    '{"type":"cart","id":"c1","amount":25}' \
    'plain text, not JSON' \
    '{"type":"refund","id":"r1","amount":20}' \
    '{"type":"refund","id":"r2","amount":150}' \
    '{"type":"ORDER","id":"o-upper","amount":1}' \
    '{"type":"order","id":"o2","amount":99}' --key shop
# A marker after everything: once it arrives, everything before it was either delivered or
# filtered out (one shard, in order).
ex_ok "put the end marker" sx put shop-events '{"type":"order","id":"end","amount":0}' --key shop
ex_wait 15 ex_has_lines shop-orders 'INFO.got order end ' 1 \
    && ex_pass "the end marker reached the function" \
    || ex_fail "the end marker reached the function" "$(ex_logs shop-orders | tail -n 20)"
ex_wait_idle shop-orders

got=$(ex_logs shop-orders | sed -n 's/.*INFO.got \([a-zA-Z]*\) \([a-z0-9-]*\) .*/\1:\2/p' | tr '\n' ' ')
ex_eq "only orders and the large refund were delivered, in stream order" \
    "order:o1 refund:r2 order:o2 order:end " "$got"
ex_eq "matching is case-sensitive (ORDER is not order)" 0 "$(ex_count_lines shop-orders 'o-upper')"
ex_eq "non-JSON data never matches a data pattern" 0 "$(ex_count_lines shop-orders 'plain text')"

# The mapping as AWS reports it: FilterCriteria with both patterns.
n=$(aws --endpoint-url "$SLUICE_ENDPOINT" lambda list-event-source-mappings --function-name shop-orders \
        --output json | ex_json 'len(d["EventSourceMappings"][0]["FilterCriteria"]["Filters"])')
ex_eq "the mapping carries two filter patterns" 2 "$n"

# Filtered-out records are not retried or blocked on: the whole stream was consumed.
ex_ok "put one more order" sx put shop-events '{"type":"order","id":"o3","amount":5}' --key shop
ex_wait 10 ex_has_lines shop-orders 'INFO.got order o3 ' 1 \
    && ex_pass "later records still flow" || ex_fail "later records still flow" "$(ex_logs shop-orders | tail)"

ex_finish
