-- orders: ReportBatchItemFailures with idempotent processing.
--
-- The handler reports the records it could not process as
--     { batchItemFailures = { { itemIdentifier = "<sequenceNumber>" }, ... } }
-- The mapping then commits everything BEFORE the lowest reported sequence number and delivers the
-- rest again, including records after it that had already succeeded. So processing must be
-- idempotent: here an order id already applied is skipped ("duplicate"). A real system keeps that
-- record in a durable store (a conditional write to a table keyed by order id); this example keeps
-- it in a global of the warm instance, which the single shard and reservedConcurrency 1 make
-- sufficient.
--
-- Orders whose data has "flaky": true fail on their first delivery only (think: a downstream
-- timeout), so the retry succeeds.

local applied = {}    -- order id -> true once its effect was applied
local attempts = {}   -- order id -> deliveries seen

function handler(event, context)
    local failures = {}
    for _, record in ipairs(event.Records) do
        local k = record.kinesis
        local order = json.decode(base64.decode(k.data))
        attempts[order.id] = (attempts[order.id] or 0) + 1
        if applied[order.id] then
            print(string.format("duplicate %s skipped (delivery %d)", order.id, attempts[order.id]))
        elseif order.flaky and attempts[order.id] == 1 then
            log.warn(string.format("failed %s (delivery 1), reporting %s", order.id,
                k.sequenceNumber))
            failures[#failures + 1] = { itemIdentifier = k.sequenceNumber }
        else
            applied[order.id] = true
            print(string.format("applied %s amount=%d (delivery %d)", order.id, order.amount,
                attempts[order.id]))
        end
    end
    return { batchItemFailures = json.array(failures) }
end
