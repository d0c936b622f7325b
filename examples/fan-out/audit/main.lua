-- audit: the second function, fed by its own mapping on "orders-enriched".
-- It only sees what enrich produced, so it can rely on the derived fields being there.

function handler(event, context)
    for _, record in ipairs(event.Records) do
        local order = json.decode(base64.decode(record.kinesis.data))
        print(string.format("audit order=%s customer=%s total=%.2f tier=%s",
            order.id, order.customer, order.total, order.tier))
    end
    return nil
end
