-- put_records.lua — wrk script: PutRecords of 500 records x 100 bytes with random partition keys
-- against a sluice daemon (JSON protocol, parse-only SigV4 header).
--   wrk -t2 -c16 -d10s -s tests/bench/put_records.lua http://127.0.0.1:PORT
-- Environment: SLUICE_BENCH_STREAM (default "bench"). Prints records/s at the end.

local stream = os.getenv("SLUICE_BENCH_STREAM") or "bench"
local RECORDS = 500
local BODIES = 16
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local last_ok = "AQgw"  -- a lone final byte encodes as X?== with the low 4 bits of ? zero

local function rand_char(set)
  local i = math.random(1, #set)
  return set:sub(i, i)
end

-- 100 random bytes, already base64: 33 full groups + one padded group (canonical).
local function rand_data()
  local t = {}
  for i = 1, 132 do t[i] = rand_char(alphabet) end
  t[133] = rand_char(alphabet)
  t[134] = rand_char(last_ok)
  t[135] = "="
  t[136] = "="
  return table.concat(t)
end

local function rand_key()
  local t = {}
  for i = 1, 16 do t[i] = rand_char("abcdefghijklmnopqrstuvwxyz0123456789") end
  return table.concat(t)
end

local bodies = {}
local n = 0

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  for b = 1, BODIES do
    local recs = {}
    for i = 1, RECORDS do
      recs[i] = '{"Data":"' .. rand_data() .. '","PartitionKey":"' .. rand_key() .. '"}'
    end
    bodies[b] = '{"StreamName":"' .. stream .. '","Records":[' .. table.concat(recs, ",") .. ']}'
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-amz-json-1.1"
  wrk.headers["X-Amz-Target"] = "Kinesis_20131202.PutRecords"
  local d = os.date("!%Y%m%dT%H%M%SZ")
  wrk.headers["X-Amz-Date"] = d
  wrk.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=bench/" .. d:sub(1, 8) ..
      "/us-east-1/kinesis/aws4_request, " ..
      "SignedHeaders=content-type;host;x-amz-date;x-amz-target, " ..
      "Signature=" .. string.rep("0", 64)
end

function request()
  n = n + 1
  return wrk.format(nil, "/", nil, bodies[(n % BODIES) + 1])
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read +
      summary.errors.write + summary.errors.timeout
  local ok = summary.requests - bad
  io.write(string.format("put_records: %d requests (%d not 200), %.0f records/s, " ..
                         "p50 %.2f ms p99 %.2f ms per request\n",
                         summary.requests, bad, ok * RECORDS / secs,
                         latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
