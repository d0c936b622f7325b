-- ledger: applies per-account balance changes; order matters within an account only.
--
-- With ParallelizationFactor F the mapping runs up to F batches of ONE shard at the same time.
-- Records are spread over F lanes by a hash of the partition key, so all records of one account
-- (= one partition key) go through the same lane, in sequence order, one batch after another:
-- per-key order is kept while different accounts are processed in parallel.
--
-- Each record is {"account":"acct-1","n":3,"delta":-5}: n is the account's own event counter, so
-- the log shows whether an account's events were applied in order.

local seen = {}   -- account -> last n applied by this instance (instances are per lane and warm)

local function now_ms(context)        -- wall clock in ms, from the invocation's deadline
    return context.deadlineMs - context.getRemainingTimeInMillis()
end

local function busy(seconds)          -- stands in for real work (a database write, an API call)
    local t = os.clock()
    while os.clock() - t < seconds do end
end

function handler(event, context)
    local started = now_ms(context)
    local keys = {}
    for _, record in ipairs(event.Records) do
        local e = json.decode(base64.decode(record.kinesis.data))
        local last = seen[e.account]
        local note = ""
        if last ~= nil and e.n <= last then note = " OUT-OF-ORDER" end
        seen[e.account] = e.n
        keys[e.account] = true
        print(string.format("apply %s n=%d delta=%d%s", e.account, e.n, e.delta, note))
    end
    busy(0.1)
    local list = {}
    for k in pairs(keys) do list[#list + 1] = k end
    table.sort(list)
    log.info(string.format("batch of %d record(s) for %s from %d to %d", #event.Records,
        table.concat(list, ","), started, now_ms(context)))
    return nil
end
