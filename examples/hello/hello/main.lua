-- hello: log every record of the batch. The smallest useful Kinesis handler.
--
-- `event` is exactly the AWS Lambda Kinesis event: event.Records[i].kinesis.data is base64,
-- partitionKey and sequenceNumber are strings, eventID is "<shardId>:<sequenceNumber>".
-- Anything printed goes to the function's log (`sluice logs hello -f`).

local invocations = 0   -- globals and upvalues survive between invocations of a warm instance

function handler(event, context)
    invocations = invocations + 1
    for _, record in ipairs(event.Records) do
        local k = record.kinesis
        local shard = record.eventID:match("^([^:]+):")
        print(string.format("hello %s (key=%s, %s, seq %s)",
            base64.decode(k.data), k.partitionKey, shard, k.sequenceNumber))
    end
    log.info(string.format("batch of %d record(s), invocation %d of this instance",
        #event.Records, invocations))
    return { processed = #event.Records }
end
