#!/usr/bin/env bash
# partial-failure: one record of a batch is reported failed; the mapping commits the prefix,
# redelivers from the failed record on, and the idempotent handler applies each order once.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

ex_start
ex_up "$EX_DIR/sluice.json"

ex_ok "put six orders in one call, o3 flaky" sx put checkout \
    '{"id":"o1","amount":1}' '{"id":"o2","amount":2}' '{"id":"o3","amount":3,"flaky":true}' \
    '{"id":"o4","amount":4}' '{"id":"o5","amount":5}' '{"id":"o6","amount":6}' --key cart-9

ex_wait 20 ex_has_lines orders 'INFO.applied o3 ' 1 \
    && ex_pass "the failed order was redelivered and applied" \
    || ex_fail "the failed order was redelivered and applied" "$(ex_logs orders | tail -n 20)"
ex_wait_idle orders

ex_eq "o3 failed exactly once" 1 "$(ex_count_lines orders 'WARN.failed o3 \(delivery 1\)')"
applied=$(ex_logs orders | sed -n 's/.*INFO.applied \(o[0-9]\) .*/\1/p' | tr '\n' ' ')
ex_eq "every order applied exactly once, in order per delivery" "o1 o2 o4 o5 o6 o3 " "$applied"
ex_ok "o3 applied on its second delivery" ex_has_lines orders 'INFO.applied o3 amount=3 \(delivery 2\)' 1
dups=$(ex_logs orders | sed -n 's/.*INFO.duplicate \(o[0-9]\) skipped.*/\1/p' | tr '\n' ' ')
ex_eq "the records after the failure were redelivered and skipped as duplicates" "o4 o5 o6 " "$dups"
ex_eq "o1 and o2 (before the failure) were committed, not redelivered" 0 \
    "$(ex_count_lines orders '(duplicate|applied) o[12] .*delivery 2')"
ex_eq "two invocations: the batch, then the suffix from o3" 2 "$(ex_count_lines orders '^START RequestId')"

ex_finish
