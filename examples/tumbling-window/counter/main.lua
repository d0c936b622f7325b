-- counter: per-key counts per tumbling window (TumblingWindowInSeconds).
--
-- With tumbling windows the mapping passes the running aggregate in event.state and expects the
-- handler to return { state = ... } (no state = failed invocation). Each invocation within a
-- window adds its records to the state it got. When the window ends, a final invocation comes
-- with isFinalInvokeForWindow = true: that is where the result is emitted (sluice sends it with
-- an empty Records list; the loop below handles records there too, as AWS's examples do).
-- The function itself keeps nothing between invocations: the state travels with the events.

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do keys[#keys + 1] = k end
    table.sort(keys)
    return keys
end

function handler(event, context)
    local state = event.state
    if type(state) ~= "table" then state = {} end

    for _, record in ipairs(event.Records) do
        local key = record.kinesis.partitionKey
        state[key] = (state[key] or 0) + 1
    end

    if event.isFinalInvokeForWindow then
        local total = 0
        for _, key in ipairs(sorted_keys(state)) do
            print(string.format("window %s..%s key=%s count=%d", event.window.start,
                event.window["end"], key, state[key]))
            total = total + state[key]
        end
        log.info(string.format("window %s..%s closed: %d record(s), %d key(s)%s",
            event.window.start, event.window["end"], total, #sorted_keys(state),
            event.isWindowTerminatedEarly and " (terminated early)" or ""))
    else
        log.info(string.format("window %s: +%d record(s), running state %s", event.window.start,
            #event.Records, json.encode(state)))
    end
    return { state = state }
end
