-- shop-orders: only ever sees what the mapping's FilterCriteria let through.
--
-- The stream carries every kind of shop event (page views, carts, orders) plus the odd non-JSON
-- line. The mapping's filters keep only orders: type "order", or a refund of at least 100.
-- Everything else is skipped by the mapping before any invocation (it costs nothing and never
-- fails), and the shard's checkpoint moves past it.

function handler(event, context)
    for _, record in ipairs(event.Records) do
        local e = json.decode(base64.decode(record.kinesis.data))
        print(string.format("got %s %s amount=%s", e.type, e.id, tostring(e.amount)))
    end
    return nil
end
