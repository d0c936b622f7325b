#!/usr/bin/python3
"""A CBOR client (python3-cbor2 over http.client) against a real sluice daemon, speaking what
the AWS Java SDKs send by default (application/x-amz-cbor-1.1, SPEC 1.1): blobs are byte
strings, timestamps are tag 1 wrapping integer epoch MILLISECONDS in both directions, errors are
CBOR maps {__type, message}."""
import io
import os
import sys
import time

import cbor2
import cbor2.decoder as cbor_pure
from cbor2.types import CBORTag as PureTag

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sluice_test import ACCOUNT, Daemon, Suite, kinesis_request, stream_arn  # noqa: E402

CT = "application/x-amz-cbor-1.1"
S = Suite("kinesis-cbor")
PORT = [0]

# cbor2 turns tag 1 into a datetime taking the value as *seconds* (RFC 8949), which overflows
# for AWS's milliseconds. Decode with the pure-Python decoder minus that semantic hook, so tag 1
# comes back as CBORTag(1, value) and the test can check exactly what was sent.
_SEMANTIC = dict(cbor_pure.semantic_decoders)
_SEMANTIC.pop(1, None)


def decode(data):
    saved = cbor_pure.semantic_decoders
    cbor_pure.semantic_decoders = _SEMANTIC
    try:
        return cbor_pure.CBORDecoder(io.BytesIO(data)).decode()
    finally:
        cbor_pure.semantic_decoders = saved


def call(op, payload):
    status, headers, body = kinesis_request(PORT[0], op, None, content_type=CT,
                                            raw=cbor2.dumps(payload))
    return status, headers, (decode(body) if body else None)


def ok(op, payload):
    status, headers, data = call(op, payload)
    S.check("%s 200" % op, status == 200, "%s %r" % (status, data))
    if data is not None:
        S.eq("%s content type" % op, headers.get("content-type"), CT)
    return data


def err(label, op, payload, code, message=None, contains=None, raw_body=None):
    if raw_body is not None:
        status, headers, body = kinesis_request(PORT[0], op, None, content_type=CT, raw=raw_body)
        data = decode(body) if body else None
    else:
        status, headers, data = call(op, payload)
    S.eq(label + " status", status, 400)
    S.eq(label + " content type", headers.get("content-type"), CT)
    S.check(label + " is a CBOR map", isinstance(data, dict), repr(data))
    if isinstance(data, dict):
        S.eq(label + " code", data.get("__type"), code)
        if message is not None:
            S.eq(label + " message", data.get("message"), message)
        if contains is not None:
            S.check(label + " message", contains in (data.get("message") or ""), repr(data))


def wait_active(name):
    for _ in range(500):
        d = ok("DescribeStreamSummary", {"StreamName": name})
        if d["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            return d
        time.sleep(0.02)
    S.check("%s ACTIVE" % name, False)
    return None


def test_create_describe():
    status, _, body = call("CreateStream", {"StreamName": "cb", "ShardCount": 1})
    S.eq("create status", status, 200)
    d = wait_active("cb")["StreamDescriptionSummary"]
    ts = d["StreamCreationTimestamp"]
    S.check("creation timestamp is tag 1", isinstance(ts, PureTag) and ts.tag == 1, repr(ts))
    S.check("tag 1 holds integer milliseconds",
            isinstance(ts.value, int) and abs(ts.value - time.time() * 1000) < 120000,
            repr(ts.value))
    S.eq("arn", d["StreamARN"], stream_arn("cb"))
    sd = ok("DescribeStream", {"StreamName": "cb"})["StreamDescription"]
    S.eq("shards", [x["ShardId"] for x in sd["Shards"]], ["shardId-000000000000"])
    S.eq("has more shards is a CBOR bool", sd["HasMoreShards"], False)
    S.eq("retention is an int", sd["RetentionPeriodHours"], 24)
    ls = ok("ListStreams", {})
    S.check("list streams", "cb" in ls["StreamNames"])


def test_put_get_bytes():
    every = bytes(range(256))
    r = ok("PutRecord", {"StreamName": "cb", "Data": every, "PartitionKey": "k"})
    S.check("put answer", r["ShardId"] == "shardId-000000000000" and len(r["SequenceNumber"]) == 56)
    rs = ok("PutRecords", {"StreamName": "cb", "Records": [
        {"Data": b"", "PartitionKey": "a"}, {"Data": b"\x00\xff" * 100, "PartitionKey": "b"}]})
    S.eq("put records", rs["FailedRecordCount"], 0)
    before_ms = int(time.time() * 1000) - 60000
    it = ok("GetShardIterator", {"StreamName": "cb", "ShardId": "shardId-000000000000",
                                 "ShardIteratorType": "AT_TIMESTAMP",
                                 "Timestamp": cbor2.CBORTag(1, before_ms)})["ShardIterator"]
    got = ok("GetRecords", {"ShardIterator": it})
    recs = got["Records"]
    S.eq("records back", len(recs), 3)
    S.check("Data are byte strings", all(isinstance(x["Data"], bytes) for x in recs))
    S.eq("all 256 byte values round trip", recs[0]["Data"], every)
    S.eq("empty data", recs[1]["Data"], b"")
    S.eq("binary data", recs[2]["Data"], b"\x00\xff" * 100)
    arr = recs[0]["ApproximateArrivalTimestamp"]
    S.check("arrival is tag 1 milliseconds", isinstance(arr, PureTag) and arr.tag == 1 and
            isinstance(arr.value, int) and abs(arr.value - time.time() * 1000) < 60000, repr(arr))
    S.check("next iterator", isinstance(got.get("NextShardIterator"), str))
    S.eq("millis behind", got["MillisBehindLatest"], 0)
    # a timestamp after the puts: nothing from before it
    after_ms = int(time.time() * 1000) + 1
    time.sleep(0.01)
    it = ok("GetShardIterator", {"StreamName": "cb", "ShardId": "shardId-000000000000",
                                 "ShardIteratorType": "AT_TIMESTAMP",
                                 "Timestamp": cbor2.CBORTag(1, after_ms)})["ShardIterator"]
    S.eq("AT_TIMESTAMP in ms honoured", ok("GetRecords", {"ShardIterator": it})["Records"], [])
    # StreamARN-only (what KCL >= 2.5 sends)
    r = ok("PutRecord", {"StreamARN": stream_arn("cb"), "Data": b"arn", "PartitionKey": "k"})
    S.eq("put by ARN", r["ShardId"], "shardId-000000000000")
    # ListShards with a tag-1 FROM_TIMESTAMP filter
    sh = ok("ListShards", {"StreamName": "cb", "ShardFilter": {
        "Type": "FROM_TIMESTAMP", "Timestamp": cbor2.CBORTag(1, before_ms)}})
    S.eq("list shards with CBOR timestamp", [x["ShardId"] for x in sh["Shards"]],
         ["shardId-000000000000"])


def test_errors():
    err("missing stream", "DescribeStream", {"StreamName": "nope"}, "ResourceNotFoundException",
        "Stream nope under account %s not found." % ACCOUNT)
    err("validation", "PutRecord", {"StreamName": "cb", "Data": b"x"}, "ValidationException",
        "1 validation error detected: Value null at 'partitionKey' failed to satisfy "
        "constraint: Member must not be null")
    err("text where a blob is expected is fine only in JSON; a number is not",
        "PutRecord", {"StreamName": "cb", "Data": 5, "PartitionKey": "k"},
        "SerializationException", "class java.math.BigDecimal can not be converted to a Blob")
    err("string for an integer", "GetRecords", {"ShardIterator": "x", "Limit": "5"},
        "SerializationException", "class java.lang.String can not be converted to an Integer")
    err("garbage body", "ListStreams", None, "SerializationException", raw_body=b"\xff\x00\x01")
    err("truncated body", "ListStreams", None, "SerializationException",
        raw_body=cbor2.dumps({"StreamName": "abcdef"})[:-2])
    err("not a map", "ListStreams", None, "SerializationException", raw_body=cbor2.dumps([1, 2]))
    err("bad iterator", "GetRecords", {"ShardIterator": "AAAA"}, "InvalidArgumentException",
        "Invalid ShardIterator.")
    st, h, body = kinesis_request(PORT[0], "NoSuchOp", None, content_type=CT,
                                  raw=cbor2.dumps({}))
    S.eq("unknown op status", st, 400)
    S.eq("unknown op type", decode(body).get("__type") if body else None,
         "UnknownOperationException")


def main():
    with Daemon(["--transition-ms", "100"]) as d:
        PORT[0] = d.port
        S.run(test_create_describe)
        S.run(test_put_get_bytes)
        S.run(test_errors)
        if S.failed:
            print(d.log_tail())
    S.finish()


if __name__ == "__main__":
    main()
