-- enrich: reads raw orders from the "orders" stream, adds derived fields and writes every
-- enriched order to the "orders-enriched" stream in ONE PutRecords call per batch.
--
-- Input record data (JSON):  {"id":"o-1","customer":"ada","qty":3,"price":2.5}
-- Output record data (JSON): the same plus total, tier, source sequence number and shard.
-- The output keeps the input's partition key, so one customer's orders stay ordered downstream.

local TIERS = { { limit = 100, name = "large" }, { limit = 20, name = "medium" } }

local function tier_of(total)
    for _, t in ipairs(TIERS) do
        if total >= t.limit then return t.name end
    end
    return "small"
end

function handler(event, context)
    local out = {}
    for _, record in ipairs(event.Records) do
        local k = record.kinesis
        local order = json.decode(base64.decode(k.data))
        order.total = order.qty * order.price
        order.tier = tier_of(order.total)
        order.source = { sequenceNumber = k.sequenceNumber, eventID = record.eventID }
        out[#out + 1] = { Data = json.encode(order), PartitionKey = k.partitionKey }
    end
    if #out == 0 then return { forwarded = 0 } end

    local resp = kinesis.put_records({ StreamName = "orders-enriched", Records = out })
    if resp.FailedRecordCount > 0 then
        -- Failing the whole batch makes the mapping retry it: downstream sees at-least-once.
        error(string.format("%d of %d enriched records were not written",
            resp.FailedRecordCount, #out))
    end
    log.info(string.format("forwarded %d enriched order(s) to orders-enriched", #out))
    return { forwarded = #out }
end
