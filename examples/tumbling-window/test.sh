#!/usr/bin/env bash
# tumbling-window: counts per key accumulate through event.state across invocations of a window
# and come out in the window's final invocation. The test uses 3-second windows instead of the
# manifest's 60 so that it finishes quickly (a copy of the example with that one value changed).
. "$(dirname "$0")/../lib.sh"
EX_DIR=$(cd "$(dirname "$0")" && pwd)

cp -r "$EX_DIR" "$EX_TMP/example"
/usr/bin/python3 - "$EX_TMP/example/sluice.json" <<'PY'
import json, sys
p = sys.argv[1]
m = json.load(open(p))
m["mappings"][0]["tumblingWindowInSeconds"] = 3
json.dump(m, open(p, "w"), indent=2)
PY

ex_start
ex_up "$EX_TMP/example/sluice.json"

# Start right after a window boundary so that every put below lands in the same 3-s window.
/usr/bin/python3 -c 'import time; t = time.time(); time.sleep(3 - t % 3 + 0.1)'
ex_ok "put two clicks for a" sx put clicks x1 x2 --key a
ex_ok "put a click for b" sx put clicks x3 --key b
sleep 0.3
ex_ok "put another click for a, in a later call" sx put clicks y1 --key a
ex_ok "put a click for b" sx put clicks y2 --key b
ex_ok "put a click for c" sx put clicks y3 --key c

finals() { ex_logs counter | grep -E 'INFO.window .* closed:' ; }
total_closed() {
    finals | sed -n 's/.*closed: \([0-9]*\) record.*/\1/p' | awk '{s+=$1} END{print s+0}'
}
all_closed() { [ "$(total_closed)" -ge 6 ]; }
ex_wait 20 all_closed \
    && ex_pass "final invocations closed windows holding all 6 records" \
    || ex_fail "final invocations closed windows holding all 6 records" "$(ex_logs counter | tail -n 20)"
ex_wait_idle counter

sum_key() {
    ex_logs counter | sed -n "s/.*INFO.window .* key=$1 count=\([0-9]*\)\$/\1/p" | awk '{s+=$1} END{print s+0}'
}
ex_eq "key a counted 3 times" 3 "$(sum_key a)"
ex_eq "key b counted twice" 2 "$(sum_key b)"
ex_eq "key c counted once" 1 "$(sum_key c)"
ex_eq "no record counted twice (6 in all)" 6 "$(total_closed)"

# Windows are aligned to multiples of their length: start..end is 3 s, start % 3 == 0.
bad=$(finals | sed -n 's/.*window \([^ ]*\)\.\.\([^ ]*\) closed.*/\1 \2/p' | /usr/bin/python3 -c '
import sys, datetime
bad = 0
for line in sys.stdin:
    s, e = [datetime.datetime.strptime(x, "%Y-%m-%dT%H:%M:%SZ") for x in line.split()]
    epoch = datetime.datetime(1970, 1, 1)
    if (e - s).total_seconds() != 3 or int((s - epoch).total_seconds()) % 3 != 0:
        bad += 1
print(bad)')
ex_eq "every window is 3 s long and aligned to the epoch" 0 "$bad"
ex_ok "one window holds all six clicks" ex_has_lines counter 'closed: 6 record\(s\), 3 key' 1
ex_ok "the state was carried between invocations (several invocations, a reached 3)" \
    ex_has_lines counter 'running state .*"a":3' 1
ex_ok "the window had more than one regular invocation" ex_has_lines counter 'INFO.window [^.]*: \+' 2

ex_finish
