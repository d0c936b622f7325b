-- ingest: processes payment events; one malformed record ("poison pill") makes it throw.
--
-- Without help, a poison pill blocks its shard: the mapping retries the same batch until the
-- record expires. With BisectBatchOnFunctionError the mapping halves the failing batch until the
-- bad record is alone, the good halves succeed, and after MaximumRetryAttempts the lone bad
-- record goes to the on-failure queue (an SQS ARN) while the shard moves on.

function handler(event, context)
    local n = #event.Records
    log.info(string.format("batch of %d: %s .. %s", n,
        event.Records[1].kinesis.sequenceNumber, event.Records[n].kinesis.sequenceNumber))
    -- Validate the whole batch first, like a real handler that writes the batch in one go.
    local payments = {}
    for i, record in ipairs(event.Records) do
        local raw = base64.decode(record.kinesis.data)
        local ok, p = pcall(json.decode, raw)
        if not ok or type(p) ~= "table" or type(p.amount) ~= "number" then
            error({ errorType = "PoisonPill",
                    errorMessage = "cannot parse record " .. record.kinesis.sequenceNumber ..
                                   ": " .. raw })
        end
        payments[i] = p
    end
    for i, p in ipairs(payments) do
        print(string.format("paid %s %.2f", p.id, p.amount))
    end
    return { ok = n }
end
