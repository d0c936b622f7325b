#!/usr/bin/python3
"""The Kinesis endpoint at the HTTP level (raw http.client, sockets and curl): authentication
header checks, unknown operations, undecodable bodies, strict base64, wrong JSON types, the
7 MiB body cap (413), non-POST (403 XML), HTTP/2 with prior knowledge, keep-alive and
pipelining, GET /health, the request-id headers, SigV4 verification with --auth, and "a failed
call changes nothing"."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sluice_test import (Daemon, Suite, auth_headers, boto3_client,  # noqa: E402
                         kinesis_request, request)

S = Suite("kinesis-protocol")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def err_of(body):
    try:
        d = json.loads(body)
    except ValueError:
        return None, None
    return d.get("__type"), d.get("message", d.get("Message"))


def expect(label, resp, status, code=None, message=None, contains=None):
    st, headers, body = resp
    S.eq(label + " status", st, status)
    S.check(label + " x-amzn-RequestId", bool(UUID.match(headers.get("x-amzn-requestid", ""))),
            str(headers))
    S.check(label + " x-amz-id-2", len(headers.get("x-amz-id-2", "")) >= 16, str(headers))
    if code is not None:
        t, m = err_of(body)
        S.eq(label + " code", t, code)
        if message is not None:
            S.eq(label + " message", m, message)
        if contains is not None:
            S.check(label + " message", m is not None and contains in m, repr(m))
    return body


def test_auth_header_checks(port):
    expect("no Authorization", kinesis_request(port, "ListStreams", {}, auth=False), 400,
           "MissingAuthenticationTokenException", "Missing Authentication Token")
    h = {"X-Amz-Target": "Kinesis_20131202.ListStreams",
         "Content-Type": "application/x-amz-json-1.1",
         "Authorization": "AWS4-HMAC-SHA256 garbage", "X-Amz-Date": "20240101T000000Z"}
    expect("malformed Authorization", request(port, "POST", "/", h, b"{}"), 400,
           "IncompleteSignatureException")
    expect("signed request passes", kinesis_request(port, "ListStreams", {}), 200)


def test_targets(port):
    expect("unknown operation", kinesis_request(port, "FlyToTheMoon", {}), 400,
           "UnknownOperationException")
    h = dict(auth_headers(), **{"Content-Type": "application/x-amz-json-1.1"})
    expect("no target", request(port, "POST", "/", h, b"{}"), 400, "UnknownOperationException")
    h["X-Amz-Target"] = "DynamoDB_20120810.ListTables"
    expect("other service", request(port, "POST", "/", h, b"{}"), 400,
           "UnknownOperationException")
    h["x-amz-target"] = h.pop("X-Amz-Target").replace("DynamoDB_20120810.ListTables",
                                                      "Kinesis_20131202.ListStreams")
    expect("lower-case header names", request(port, "POST", "/", h, b"{}"), 200)
    expect("path is ignored for POST", request(port, "POST", "/some/path", h, b"{}"), 200)


def test_bodies(port):
    expect("unparsable JSON", kinesis_request(port, "ListStreams", None, raw=b"{not json"), 400,
           "SerializationException")
    expect("top-level array", kinesis_request(port, "ListStreams", None, raw=b"[]"), 400,
           "SerializationException")
    expect("empty body means no parameters", kinesis_request(port, "ListStreams", None, raw=b""),
           200)
    expect("binary garbage", kinesis_request(port, "ListStreams", None,
                                             raw=bytes(range(256)) * 4), 400,
           "SerializationException")
    expect("bad base64 length", kinesis_request(port, "PutRecord", {
        "StreamName": "p", "PartitionKey": "k", "Data": "abcde"}), 400, "SerializationException",
        "'abcde' can not be converted to a Blob: Base64 encoded length is expected a multiple of "
        "4 bytes but found: 5")
    expect("bad base64 char", kinesis_request(port, "PutRecord", {
        "StreamName": "p", "PartitionKey": "k", "Data": "ab$d"}), 400, "SerializationException",
        "'ab$d' can not be converted to a Blob: Invalid Base64 character: '$'")
    expect("non-canonical base64", kinesis_request(port, "PutRecord", {
        "StreamName": "p", "PartitionKey": "k", "Data": "QR=="}), 400, "SerializationException",
        "'QR==' can not be converted to a Blob: Invalid last non-pad Base64 character dectected")
    expect("url-safe base64 rejected", kinesis_request(port, "PutRecord", {
        "StreamName": "p", "PartitionKey": "k", "Data": "a-_b"}), 400, "SerializationException")
    expect("string for integer", kinesis_request(port, "ListStreams", {"Limit": "10"}), 400,
           "SerializationException", "class java.lang.String can not be converted to an Integer")
    expect("number for string", kinesis_request(port, "DescribeStream", {"StreamName": 12}),
           400, "SerializationException",
           "class java.math.BigDecimal can not be converted to an String")
    expect("object for list", kinesis_request(port, "PutRecords", {"StreamName": "p",
                                                                    "Records": {"a": 1}}),
           400, "SerializationException", "Start of structure or map found where not expected.")
    expect("bool for string", kinesis_request(port, "DescribeStream", {"StreamName": True}),
           400, "SerializationException",
           "class java.lang.Boolean can not be converted to an String")
    expect("validation", kinesis_request(port, "ListStreams", {"Limit": 0}), 400,
           "ValidationException",
           "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: "
           "Member must have value greater than or equal to 1")
    # unknown members are ignored, like AWS
    expect("unknown members ignored", kinesis_request(port, "ListStreams",
                                                      {"Limit": 5, "Bogus": [1, {"x": None}]}),
           200)
    # deeply nested JSON must not crash the daemon
    deep = b"{\"a\":" + b"[" * 5000 + b"]" * 5000 + b"}"
    st, _, _ = kinesis_request(port, "ListStreams", None, raw=deep)
    S.check("deep nesting answered", st in (200, 400), str(st))


def test_body_cap(port):
    """Bodies over 7 MiB: 413 with an empty body, then the connection closes."""
    size = 7 * 1024 * 1024 + 1
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = ("POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.PutRecord\r\n"
            "Content-Type: application/x-amz-json-1.1\r\nContent-Length: %d\r\n\r\n" % size)
    s.sendall(head.encode())
    chunk = b"A" * 65536
    sent = 0
    try:
        while sent < size:
            n = min(len(chunk), size - sent)
            s.sendall(chunk[:n])
            sent += n
    except OSError:
        pass  # the server may answer and close before reading everything
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError:
        pass
    s.close()
    S.check("413 for > 7 MiB", data.startswith(b"HTTP/1.1 413"), data[:80])
    # the daemon is still fine
    expect("alive after 413", kinesis_request(port, "ListStreams", {}), 200)


def test_methods_and_paths(port):
    st, headers, body = request(port, "GET", "/")
    S.eq("GET / status", st, 403)
    S.check("GET / is XML AccessDeniedException",
            body.startswith(b"<AccessDeniedException>") and
            b"<Message>Unable to determine service/operation name to be authorized</Message>"
            in body, body[:200])
    S.check("GET / request id", bool(UUID.match(headers.get("x-amzn-requestid", ""))))
    for m in ("PUT", "DELETE"):
        st, _, body = request(port, m, "/", {}, b"")
        S.eq("%s / status" % m, st, 403)
    st, headers, body = request(port, "GET", "/no/such/path")
    S.eq("unknown path 404", st, 404)
    S.check("404 is JSON", err_of(body)[0] is not None, body[:200])
    st, headers, body = request(port, "GET", "/health")
    S.eq("health status", st, 200)
    h = json.loads(body)
    S.check("health fields", set(h) >= {"version", "uptimeSeconds", "streams", "shards"}, str(h))
    S.check("health counts", isinstance(h["streams"], int) and isinstance(h["shards"], int))
    S.check("health request id", bool(UUID.match(headers.get("x-amzn-requestid", ""))))


def test_keepalive_and_pipelining(port):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ids = set()
    sock = None
    for i in range(20):
        st, headers, _ = kinesis_request(port, "ListStreams", {}, conn=conn)
        S.check("keep-alive request %d" % i, st == 200)
        ids.add(headers.get("x-amzn-requestid"))
        if sock is None:
            sock = conn.sock
        S.check("same connection %d" % i, conn.sock is sock and sock is not None)
    S.eq("request ids unique", len(ids), 20)
    conn.close()
    # pipelining: three requests in one write, three answers in order
    hdrs = "".join("%s: %s\r\n" % kv for kv in auth_headers().items())
    reqs = b""
    for op, body in (("ListStreams", b"{}"), ("Bogus", b"{}"), ("ListStreams", b"{\"Limit\":1}")):
        reqs += ("POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.%s\r\n"
                 "Content-Type: application/x-amz-json-1.1\r\n%sContent-Length: %d\r\n\r\n"
                 % (op, hdrs, len(body))).encode() + body
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(reqs)
    data = b""
    deadline = time.monotonic() + 10
    while data.count(b"HTTP/1.1 ") < 3 or not data.rstrip().endswith(b"}"):
        if time.monotonic() > deadline:
            break
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3})", data)
    S.eq("pipelined answers in order", statuses, [b"200", b"400", b"200"])


def test_http2_prior_knowledge(port):
    curl = shutil.which("curl")
    if not curl:
        S.check("curl installed", False)
        return
    hdr = []
    for k, v in auth_headers().items():
        hdr += ["-H", "%s: %s" % (k, v)]
    p = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-o", "-", "-w",
                        "\n%{http_version} %{http_code}", "-X", "POST",
                        "-H", "X-Amz-Target: Kinesis_20131202.CreateStream",
                        "-H", "Content-Type: application/x-amz-json-1.1"] + hdr +
                       ["--data-binary", '{"StreamName":"h2","ShardCount":1}',
                        "http://127.0.0.1:%d/" % port], capture_output=True, text=True,
                       timeout=30)
    S.eq("h2 create answered over HTTP/2", p.stdout.strip().splitlines()[-1:], ["2 200"])
    p = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-D", "-", "-X", "POST",
                        "-H", "X-Amz-Target: Kinesis_20131202.ListStreams",
                        "-H", "Content-Type: application/x-amz-json-1.1"] + hdr +
                       ["--data-binary", "{}", "http://127.0.0.1:%d/" % port],
                       capture_output=True, text=True, timeout=30)
    S.check("h2 status line", p.stdout.startswith("HTTP/2 200"), p.stdout[:200])
    S.check("h2 request id header", "x-amzn-requestid:" in p.stdout.lower(), p.stdout[:400])
    body = p.stdout.replace("\r\n", "\n").split("\n\n", 1)[-1]
    S.check("h2 body", "h2" in json.loads(body).get("StreamNames", []), body[:200])
    p = subprocess.run([curl, "-s", "--http2-prior-knowledge", "-X", "POST",
                        "-H", "X-Amz-Target: Kinesis_20131202.ListStreams",
                        "-H", "Content-Type: application/x-amz-json-1.1",
                        "--data-binary", "{}", "http://127.0.0.1:%d/" % port],
                       capture_output=True, text=True, timeout=30)
    S.eq("h2 missing auth", err_of(p.stdout)[0], "MissingAuthenticationTokenException")


def test_failed_calls_change_nothing(port):
    kinesis_request(port, "CreateStream", {"StreamName": "atomic", "ShardCount": 1})
    for _ in range(200):
        st, _, b = kinesis_request(port, "DescribeStreamSummary", {"StreamName": "atomic"})
        if json.loads(b)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
            break
        time.sleep(0.02)
    # one bad record fails the whole batch, before anything is stored
    expect("batch with a bad record", kinesis_request(port, "PutRecords", {
        "StreamName": "atomic", "Records": [{"Data": "QQ==", "PartitionKey": "a"},
                                            {"Data": "QQ==", "PartitionKey": "a",
                                             "ExplicitHashKey": "12x"}]}),
        400, "ValidationException",
        "1 validation error detected: Value '12x' at 'records.2.member.explicitHashKey' failed "
        "to satisfy constraint: Member must satisfy regular expression pattern: "
        "0|([1-9]\\d{0,38})")
    expect("batch with a bad base64 record", kinesis_request(port, "PutRecords", {
        "StreamName": "atomic", "Records": [{"Data": "QQ==", "PartitionKey": "a"},
                                            {"Data": "Q", "PartitionKey": "a"}]}),
        400, "SerializationException")
    st, _, b = kinesis_request(port, "GetShardIterator", {
        "StreamName": "atomic", "ShardId": "shardId-000000000000",
        "ShardIteratorType": "TRIM_HORIZON"})
    it = json.loads(b)["ShardIterator"]
    st, _, b = kinesis_request(port, "GetRecords", {"ShardIterator": it})
    S.eq("nothing stored by failed calls", json.loads(b)["Records"], [])
    expect("bad tags change nothing", kinesis_request(port, "AddTagsToStream", {
        "StreamName": "atomic", "Tags": {"ok": "1", "bad": "a#b"}}), 400,
        "InvalidArgumentException")
    st, _, b = kinesis_request(port, "ListTagsForStream", {"StreamName": "atomic"})
    S.eq("no tag stored", json.loads(b)["Tags"], [])
    # operations without output answer 200 with an empty body
    st, headers, b = kinesis_request(port, "AddTagsToStream", {"StreamName": "atomic",
                                                               "Tags": {"ok": "1"}})
    S.eq("no-output op status", st, 200)
    S.eq("no-output op body", b, b"")


def test_json_shapes(port):
    st, _, b = kinesis_request(port, "PutRecord", {"StreamName": "atomic", "Data": "AAEC",
                                                   "PartitionKey": "p"})
    S.eq("put status", st, 200)
    st, _, b = kinesis_request(port, "GetShardIterator", {
        "StreamName": "atomic", "ShardId": "shardId-000000000000",
        "ShardIteratorType": "TRIM_HORIZON"})
    it = json.loads(b)["ShardIterator"]
    S.check("iterator length <= 512", 0 < len(it) <= 512, str(len(it)))
    st, headers, b = kinesis_request(port, "GetRecords", {"ShardIterator": it})
    S.eq("json content type", headers.get("content-type"), "application/x-amz-json-1.1")
    text = b.decode()
    m = re.search(r'"ApproximateArrivalTimestamp":([^,}]+)', text)
    S.check("timestamp is plain decimal seconds with ms",
            m is not None and re.fullmatch(r"\d{10}\.\d{3}", m.group(1)) is not None,
            m.group(1) if m else text[:200])
    rec = json.loads(b)["Records"][0]
    S.eq("data is standard base64", rec["Data"], "AAEC")


def test_sigv4_verification():
    fd, path = tempfile.mkstemp(prefix="sluice-auth-")
    os.write(fd, b"# test credentials\nAKIDTEST secretsecret\n")
    os.close(fd)
    try:
        with Daemon(["--auth", path]) as d:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import ClientError
            cfg = Config(retries={"max_attempts": 0})
            good = boto3.client("kinesis", endpoint_url=d.endpoint, region_name="us-east-1",
                                aws_access_key_id="AKIDTEST",
                                aws_secret_access_key="secretsecret", config=cfg)
            S.check("signed with the right key", "StreamNames" in good.list_streams())
            bad = boto3.client("kinesis", endpoint_url=d.endpoint, region_name="us-east-1",
                               aws_access_key_id="AKIDTEST", aws_secret_access_key="wrong",
                               config=cfg)
            code = None
            try:
                bad.list_streams()
            except ClientError as e:
                code = e.response["Error"]["Code"]
            S.eq("wrong secret rejected", code, "InvalidSignatureException")
            other = boto3_client(d.endpoint)
            code = None
            try:
                other.list_streams()
            except ClientError as e:
                code = e.response["Error"]["Code"]
            S.eq("unknown key rejected", code, "UnrecognizedClientException")
            st, _, _ = request(d.port, "GET", "/health")
            S.eq("health needs no signature", st, 200)
    finally:
        os.unlink(path)


def test_fsync_always_puts():
    """With --fsync always the appends run on the thread pool; answers still arrive, in order per
    connection, and everything acknowledged is readable."""
    import threading
    with Daemon(["--fsync", "always", "--transition-ms", "0"]) as d:
        kinesis_request(d.port, "CreateStream", {"StreamName": "dur", "ShardCount": 2})
        results = []

        def worker(n):
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
            for i in range(10):
                st, _, b = kinesis_request(d.port, "PutRecords", {
                    "StreamName": "dur", "Records": [{"Data": "QUJD", "PartitionKey": "%d-%d-%d"
                                                      % (n, i, j)} for j in range(50)]}, conn=conn)
                results.append((st, json.loads(b).get("FailedRecordCount") if b else None))
                st, _, b = kinesis_request(d.port, "PutRecord", {
                    "StreamName": "dur", "Data": "QUJD", "PartitionKey": "single"}, conn=conn)
                results.append((st, 0 if st == 200 and "SequenceNumber" in json.loads(b)
                                else None))
            conn.close()
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        S.eq("every fsync=always put answered 200", [r for r in results if r != (200, 0)], [])
        total = 0
        for sid in ("shardId-000000000000", "shardId-000000000001"):
            st, _, b = kinesis_request(d.port, "GetShardIterator", {
                "StreamName": "dur", "ShardId": sid, "ShardIteratorType": "TRIM_HORIZON"})
            it = json.loads(b)["ShardIterator"]
            st, _, b = kinesis_request(d.port, "GetRecords", {"ShardIterator": it})
            total += len(json.loads(b)["Records"])
        S.eq("every acknowledged record stored", total, 4 * 10 * 51)
        S.eq("bad put under fsync=always", kinesis_request(d.port, "PutRecord", {
            "StreamName": "nope", "Data": "QUJD", "PartitionKey": "p"})[0], 400)
        S.eq("daemon stops cleanly", d.stop(cleanup=False), 0)


def main():
    with Daemon(["--transition-ms", "50"]) as d:
        S.run(test_auth_header_checks, d.port)
        S.run(test_targets, d.port)
        S.run(test_bodies, d.port)
        S.run(test_body_cap, d.port)
        S.run(test_methods_and_paths, d.port)
        S.run(test_keepalive_and_pipelining, d.port)
        S.run(test_http2_prior_knowledge, d.port)
        S.run(test_failed_calls_change_nothing, d.port)
        S.run(test_json_shapes, d.port)
        S.check("daemon survived everything", d.proc.poll() is None)
        if S.failed:
            print(d.log_tail())
    S.run(test_sigv4_verification)
    S.run(test_fsync_always_puts)
    S.finish()


if __name__ == "__main__":
    main()
