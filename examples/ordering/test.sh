#!/usr/bin/env bash
# ordering: with ParallelizationFactor 4 on one shard, batches run in parallel lanes, yet each
# partition key's records are applied exactly once and in order.
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

ex_start
ex_up "$EX_DIR/sluice.json"

uuid=$(sx map list --function ledger --json | ex_json 'd[0]["UUID"]')
ex_eq "the mapping has ParallelizationFactor 4" 4 \
    "$(sx map get "$uuid" --json | ex_json 'd["ParallelizationFactor"]')"

# Pause the mapping while the records are written, so that a backlog builds up and the lanes
# have full batches to work on when it resumes (its checkpoint is kept while disabled).
state() { sx map get "$uuid" --json | ex_json 'd["State"]'; }
is_state() { [ "$(state)" = "$1" ]; }
ex_wait 10 is_state Enabled || ex_fail "the mapping becomes Enabled" "state: $(state)"
ex_ok "disable the mapping" sx map disable "$uuid"
ex_wait 10 is_state Disabled && ex_pass "the mapping is Disabled" \
    || ex_fail "the mapping is Disabled" "state: $(state)"

# 8 accounts x 6 events, interleaved across accounts, one put per record.
ACCOUNTS="acct-1 acct-2 acct-3 acct-4 acct-5 acct-6 acct-7 acct-8"
ok=1
for n in 1 2 3 4 5 6; do
    for a in $ACCOUNTS; do
        sx put transfers "{\"account\":\"$a\",\"n\":$n,\"delta\":$n}" --key "$a" >/dev/null || ok=0
    done
done
ex_eq "48 records put" 1 "$ok"
ex_eq "nothing was applied while the mapping was disabled" 0 "$(ex_count_lines ledger 'INFO.apply ')"
ex_ok "enable the mapping" sx map enable "$uuid"

applied() { [ "$(ex_count_lines ledger 'INFO.apply ')" -ge 48 ]; }
ex_wait 25 applied \
    && ex_pass "all 48 records were applied" \
    || ex_fail "all 48 records were applied" "$(ex_logs ledger | tail -n 20)"
ex_wait_idle ledger

# Per account, the log (appended as each invocation ends) must show n = 1..6 exactly once, in order.
bad=""
for a in $ACCOUNTS; do
    seq_seen=$(ex_logs ledger | sed -n "s/.*INFO.apply $a n=\([0-9]*\) .*/\1/p" | tr '\n' ' ')
    [ "$seq_seen" = "1 2 3 4 5 6 " ] || bad="$bad $a:[$seq_seen]"
done
ex_eq "every account's events applied once, in order" "" "$bad"
ex_eq "no instance saw an account go backwards" 0 "$(ex_count_lines ledger 'OUT-OF-ORDER')"

# Lanes: a batch holds the keys of one lane only. Keys that shared a batch are in the same lane,
# so the groups of keys that ever shared a batch are at least 2 (the work was split) and at most
# 4 (the factor).
batches=$(ex_logs ledger | sed -n 's/.*INFO.batch of \([0-9]*\) record(s) for \([^ ]*\) from \([0-9]*\) to \([0-9]*\)$/\1 \2 \3 \4/p')
read -r groups maxbatch overlap <<<"$(printf '%s\n' "$batches" | /usr/bin/python3 -c '
import sys
parent = {}
def find(k):
    while parent.setdefault(k, k) != k:
        k = parent[k]
    return k
maxbatch, spans = 0, []
for line in sys.stdin:
    if not line.strip():
        continue
    n, keys, t0, t1 = line.split()
    maxbatch = max(maxbatch, int(n))
    spans.append((int(t0), int(t1)))
    ks = keys.split(",")
    for k in ks[1:]:
        parent[find(k)] = find(ks[0])
    find(ks[0])
groups = len({find(k) for k in parent})
# most invocations running at the same moment
events = sorted([(a, 1) for a, b in spans] + [(b, -1) for a, b in spans], key=lambda e: (e[0], e[1]))
cur = best = 0
for _, d in events:
    cur += d
    best = max(best, cur)
print(groups, maxbatch, best)')"
ex_ok "records were batched (largest batch: $maxbatch records)" test "$maxbatch" -gt 1
ex_ok "the accounts were spread over 2..4 lanes ($groups groups of keys never mixed)" \
    test "$groups" -ge 2 -a "$groups" -le 4
ex_ok "batches of one shard ran concurrently (up to $overlap at once)" test "$overlap" -ge 2

ex_finish
