"""Lambda functions API end to end (SPEC 5.1-5.3): the AWS CLI and boto3 against a real daemon.

Deploy Lua handlers from zips, invoke them (RequestResponse, Event, DryRun, LogType Tail), get
every kind of function error (thrown, timeout, memory limit, bad return value), reserved
concurrency, an atomic code update while invocations are in flight, persistence across a
restart, the kinesis module writing to the local broker, and the error shapes of the API.
"""
import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_test as st  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
           AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")

OK_HANDLER = """
local calls = 0
function handler(event, context)
  calls = calls + 1
  log.info("got " .. tostring(event.n))
  return {n = event.n, calls = calls, fn = context.functionName,
          remaining_ok = context.getRemainingTimeInMillis() > 0,
          request = context.awsRequestId, mode = os.getenv("MODE"),
          region = os.getenv("AWS_REGION"), path = os.getenv("PATH")}
end
"""
ERROR_HANDLER = """
function handler(event, context)
  if event.kind == "table" then error({errorType = "OrderError", errorMessage = "bad order"}) end
  error("boom")
end
"""
SLOW_HANDLER = """
function handler(event, context)
  local t = os.clock()
  while os.clock() - t < (event.seconds or 0) do end
  return {version = "v1"}
end
"""
SLOW_HANDLER_V2 = SLOW_HANDLER.replace('"v1"', '"v2"')
LOOP_HANDLER = "function handler() while true do end end"
MEMORY_HANDLER = """
function handler()
  local t = {}
  for i = 1, 1e9 do t[i] = string.rep("x", 1024) .. i end
end
"""
BAD_RETURN_HANDLER = "function handler() return function() end end"
PUT_HANDLER = """
function handler(event)
  local r = kinesis.put_record{StreamName = event.stream, PartitionKey = "k", Data = "from lua"}
  return r
end
"""


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def lam(endpoint, validate=True):
    import boto3
    from botocore.config import Config
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"max_attempts": 0}, read_timeout=60,
                                      parameter_validation=validate))


def create(c, name, code, timeout=3, memory=128, handler="main.handler"):
    return c.create_function(FunctionName=name, Runtime="lua5.4", Role=ROLE, Handler=handler,
                             Code={"ZipFile": zip_of({"main.lua": code})}, Timeout=timeout,
                             MemorySize=memory)


def invoke(c, name, payload, **kw):
    r = c.invoke(FunctionName=name, Payload=json.dumps(payload, separators=(",", ":")).encode(),
                 **kw)
    body = r["Payload"].read()
    return r, json.loads(body) if body else None


def aws(d, *args):
    p = subprocess.run(["/usr/bin/aws", "--endpoint-url", d.endpoint, "--output", "json"] +
                       list(args), env=ENV, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def test_cli_lifecycle(s, d, tmp):
    zpath = os.path.join(tmp, "f.zip")
    with open(zpath, "wb") as f:
        f.write(zip_of({"main.lua": OK_HANDLER}))
    rc, out, err = aws(d, "lambda", "create-function", "--function-name", "cli-fn",
                       "--runtime", "lua5.4", "--handler", "main.handler", "--role", ROLE,
                       "--zip-file", "fileb://" + zpath)
    s.eq("cli create rc", rc, 0)
    if rc:
        print(err)
        return
    cfg = json.loads(out)
    s.eq("cli create name", cfg["FunctionName"], "cli-fn")
    s.eq("cli create arn", cfg["FunctionArn"],
         "arn:aws:lambda:us-east-1:000000000000:function:cli-fn")
    s.eq("cli create state", cfg["State"], "Active")
    with open(zpath, "rb") as f:
        want_sha = base64.b64encode(__import__("hashlib").sha256(f.read()).digest()).decode()
    s.eq("cli create sha", cfg["CodeSha256"], want_sha)
    s.eq("cli defaults", (cfg["Timeout"], cfg["MemorySize"], cfg["Version"]), (3, 128, "$LATEST"))

    rc, out, _ = aws(d, "lambda", "get-function", "--function-name", "cli-fn")
    s.eq("cli get rc", rc, 0)
    s.eq("cli get config", json.loads(out)["Configuration"]["Handler"], "main.handler")

    outfile = os.path.join(tmp, "out.json")
    rc, out, err = aws(d, "lambda", "invoke", "--function-name", "cli-fn", "--payload",
                       '{"n": 7}', "--cli-binary-format", "raw-in-base64-out",
                       "--log-type", "Tail", outfile)
    s.eq("cli invoke rc", rc, 0)
    meta = json.loads(out) if rc == 0 else {}
    s.eq("cli invoke status", meta.get("StatusCode"), 200)
    s.check("cli invoke no function error", "FunctionError" not in meta, out)
    log = base64.b64decode(meta.get("LogResult", "")).decode()
    s.check("cli tail START", "START RequestId:" in log, log)
    s.check("cli tail REPORT", "REPORT RequestId:" in log and "Billed Duration:" in log, log)
    s.check("cli tail handler line", "got 7" in log, log)
    with open(outfile) as f:
        s.eq("cli invoke result", json.load(f)["n"], 7)

    rc, out, _ = aws(d, "lambda", "update-function-configuration", "--function-name", "cli-fn",
                     "--timeout", "10", "--memory-size", "256", "--environment",
                     "Variables={MODE=test}")
    s.eq("cli update-config rc", rc, 0)
    if rc == 0:
        cfg = json.loads(out)
        s.eq("cli update-config values", (cfg["Timeout"], cfg["MemorySize"]), (10, 256))
        s.eq("cli update-config env", cfg["Environment"]["Variables"], {"MODE": "test"})
        r, body = invoke(lam(d.endpoint), "cli-fn", {"n": 8})
        s.eq("handler sees its environment, not the host's",
             (body.get("mode"), body.get("region"), body.get("path")), ("test", "us-east-1", None))

    rc, out, _ = aws(d, "lambda", "list-functions")
    s.eq("cli list rc", rc, 0)
    s.check("cli list has fn", any(f["FunctionName"] == "cli-fn"
                                   for f in json.loads(out)["Functions"]) if rc == 0 else False)

    rc, out, err = aws(d, "lambda", "delete-function", "--function-name", "cli-fn")
    s.eq("cli delete rc", rc, 0)
    rc, out, err = aws(d, "lambda", "get-function", "--function-name", "cli-fn")
    s.check("cli get deleted fails", rc != 0 and "ResourceNotFoundException" in err, err)


def test_invoke_results_and_errors(s, d):
    c = lam(d.endpoint)
    create(c, "ok", OK_HANDLER)
    create(c, "err", ERROR_HANDLER)
    create(c, "loop", LOOP_HANDLER, timeout=1)
    create(c, "mem", MEMORY_HANDLER)
    create(c, "badret", BAD_RETURN_HANDLER)

    r, body = invoke(c, "ok", {"n": 1})
    s.eq("ok status", r["StatusCode"], 200)
    s.eq("ok executed version", r["ExecutedVersion"], "$LATEST")
    s.eq("ok body", (body["n"], body["fn"], body["remaining_ok"]), (1, "ok", True))
    r2, body2 = invoke(c, "ok", {"n": 2})
    s.eq("warm instance keeps globals", body2["calls"], 2)
    s.check("request ids differ", body["request"] != body2["request"])

    r, body = invoke(c, "err", {})
    s.eq("thrown error header", r.get("FunctionError"), "Unhandled")
    s.eq("thrown error type", body.get("errorType"), "Error")
    s.check("thrown error message", "boom" in body.get("errorMessage", ""), body)
    s.check("thrown error stack", isinstance(body.get("stackTrace"), list), body)
    r, body = invoke(c, "err", {"kind": "table"})
    s.eq("table error type", (body.get("errorType"), body.get("errorMessage")),
         ("OrderError", "bad order"))

    t0 = time.monotonic()
    r, body = invoke(c, "loop", {})
    s.eq("timeout header", r.get("FunctionError"), "Unhandled")
    s.eq("timeout type", body.get("errorType"), "Sandbox.Timedout")
    s.check("timeout message", "Task timed out after 1.00 seconds" in body.get("errorMessage", ""),
            body)
    s.check("timeout honoured", time.monotonic() - t0 < 5.0)

    r, body = invoke(c, "mem", {})
    s.eq("memory header", r.get("FunctionError"), "Unhandled")
    s.eq("memory type", body.get("errorType"), "Runtime.OutOfMemory")

    r, body = invoke(c, "badret", {})
    s.eq("bad return type", body.get("errorType"), "Runtime.InvalidReturnValue")

    # the daemon keeps serving after all of that
    r, body = invoke(c, "ok", {"n": 3})
    s.eq("still serving", body["n"], 3)

    r = c.invoke(FunctionName="ok", InvocationType="DryRun", Payload=b"{}")
    s.eq("dry run", r["StatusCode"], 204)
    r = c.invoke(FunctionName="ok", InvocationType="Event", Payload=b'{"n": 9}')
    s.eq("event", r["StatusCode"], 202)
    deadline = time.time() + 10
    found = False
    while time.time() < deadline and not found:
        status, _, logs = st.request(d.port, "GET", "/sluice/logs/ok")
        found = b"got 9" in logs
        if not found:
            logfile = os.path.join(d.data_dir, "logs", "ok", "current.log")
            found = os.path.exists(logfile) and b"got 9" in open(logfile, "rb").read()
        time.sleep(0.05)
    s.check("event invocation ran", found)

    logfile = os.path.join(d.data_dir, "logs", "ok", "current.log")
    text = open(logfile).read() if os.path.exists(logfile) else ""
    s.check("log has START/END/REPORT", text.count("START RequestId:") >= 3 and
            text.count("END RequestId:") >= 3 and "Init Duration:" in text, text[-500:])


def test_api_errors(s, d):
    from botocore.exceptions import ClientError
    c = lam(d.endpoint)
    st.expect_client_error(s, "missing function", lambda: c.get_function(FunctionName="nope"),
                           "ResourceNotFoundException",
                           "Function not found: arn:aws:lambda:us-east-1:000000000000:"
                           "function:nope")
    create(c, "dup", OK_HANDLER)
    st.expect_client_error(s, "duplicate", lambda: create(c, "dup", OK_HANDLER),
                           "ResourceConflictException", "Function already exist: dup")
    st.expect_client_error(s, "bad zip", lambda: c.create_function(
        FunctionName="badzip", Runtime="lua5.4", Role=ROLE, Handler="main.handler",
        Code={"ZipFile": b"definitely not a zip"}), "InvalidParameterValueException",
        contains="Could not unzip uploaded file")
    st.expect_client_error(s, "bad runtime", lambda: c.create_function(
        FunctionName="badrt", Runtime="python3.12", Role=ROLE, Handler="main.handler",
        Code={"ZipFile": zip_of({"main.lua": OK_HANDLER})}), "InvalidParameterValueException")
    raw = lam(d.endpoint, validate=False)  # botocore would refuse Timeout=0 before sending it
    st.expect_client_error(s, "bad timeout", lambda: raw.update_function_configuration(
        FunctionName="dup", Timeout=0), "ValidationException", contains="timeout")
    # invalid JSON payload: raw request (boto3 sends bytes as-is)
    status, headers, body = st.request(d.port, "POST",
                                       "/2015-03-31/functions/dup/invocations",
                                       {"Content-Type": "application/json"}, b"{not json")
    s.eq("invalid payload status", status, 400)
    s.eq("invalid payload type", headers.get("x-amzn-errortype"), "InvalidRequestContentException")
    big = b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"'
    status, headers, _ = st.request(d.port, "POST", "/2015-03-31/functions/dup/invocations",
                                    {"Content-Type": "application/json"}, big)
    s.eq("too large status", status, 413)
    s.eq("too large type", headers.get("x-amzn-errortype"), "RequestTooLargeException")
    # the zip with a path escaping the code directory is refused and writes nothing outside
    evil = zip_of({"../../escape.lua": "x"})
    st.expect_client_error(s, "path traversal", lambda: c.create_function(
        FunctionName="evil", Runtime="lua5.4", Role=ROLE, Handler="main.handler",
        Code={"ZipFile": evil}), "InvalidParameterValueException")
    s.check("nothing escaped", not os.path.exists(os.path.join(d.data_dir, "escape.lua")))
    r = c.delete_function(FunctionName="dup")
    s.eq("delete status", r["ResponseMetadata"]["HTTPStatusCode"], 204)
    try:
        c.invoke(FunctionName="dup", Payload=b"{}")
        s.check("invoke deleted", False, "no error")
    except ClientError as e:
        s.eq("invoke deleted code", e.response["Error"]["Code"], "ResourceNotFoundException")


def test_reserved_concurrency(s, d):
    from botocore.exceptions import ClientError
    c = lam(d.endpoint)
    create(c, "slow", SLOW_HANDLER, timeout=10)
    c.put_function_concurrency(FunctionName="slow", ReservedConcurrentExecutions=1)
    s.eq("concurrency get", c.get_function_concurrency(FunctionName="slow")
         .get("ReservedConcurrentExecutions"), 1)
    results = {}

    def first():
        results["first"] = invoke(c, "slow", {"seconds": 1.5})[1]
    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.5)
    try:
        lam(d.endpoint).invoke(FunctionName="slow", Payload=b'{"seconds": 0}')
        s.check("second invocation throttled", False, "no error")
    except ClientError as e:
        s.eq("throttle code", e.response["Error"]["Code"], "TooManyRequestsException")
        s.eq("throttle status", e.response["ResponseMetadata"]["HTTPStatusCode"], 429)
    t.join()
    s.eq("first finished", results.get("first"), {"version": "v1"})
    c.put_function_concurrency(FunctionName="slow", ReservedConcurrentExecutions=0)
    st.expect_client_error(s, "zero concurrency", lambda: c.invoke(FunctionName="slow",
                                                                   Payload=b"{}"),
                           "TooManyRequestsException")
    c.delete_function_concurrency(FunctionName="slow")
    s.eq("unreserved again", invoke(c, "slow", {"seconds": 0})[1], {"version": "v1"})


def test_atomic_update(s, d):
    c = lam(d.endpoint)
    create(c, "atomic", SLOW_HANDLER, timeout=10)
    out = {}

    def inflight():
        out["old"] = invoke(lam(d.endpoint), "atomic", {"seconds": 1.5})[1]
    t = threading.Thread(target=inflight)
    t.start()
    time.sleep(0.4)
    c.update_function_code(FunctionName="atomic", ZipFile=zip_of({"main.lua": SLOW_HANDLER_V2}))
    new = invoke(c, "atomic", {"seconds": 0})[1]
    t.join()
    s.eq("in-flight invocation finished on old code", out.get("old"), {"version": "v1"})
    s.eq("new invocation runs new code", new, {"version": "v2"})


def test_kinesis_module(s, d):
    c = lam(d.endpoint)
    k = st.boto3_client(d.endpoint)
    k.create_stream(StreamName="fanout", ShardCount=1)
    k.get_waiter("stream_exists").wait(StreamName="fanout",
                                       WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    create(c, "putter", PUT_HANDLER)
    r, body = invoke(c, "putter", {"stream": "fanout"})
    s.check("put_record result", body and body.get("ShardId") == "shardId-000000000000" and
            len(body.get("SequenceNumber", "")) == 56, body)
    it = k.get_shard_iterator(StreamName="fanout", ShardId="shardId-000000000000",
                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    recs = k.get_records(ShardIterator=it)["Records"]
    s.eq("record written by the handler", [(x["PartitionKey"], x["Data"]) for x in recs],
         [("k", b"from lua")])
    r, body = invoke(c, "putter", {"stream": "missing"})
    s.eq("put_record error surfaces", body.get("errorType"), "ResourceNotFoundException")


def native_zip(name):
    """The static test handler built by the Makefile ($BUILD/tests/handlers/NAME), zipped with
    its exec bit."""
    build = os.environ.get("BUILD", "build")
    target = os.path.join(build, "tests", "handlers", name)  # relative: the Makefile's rule
    path = os.path.join(st.ROOT, target)
    if not os.path.exists(path):
        subprocess.run(["make", "-s", "BUILD=" + build, target], cwd=st.ROOT, check=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo(name)
        info.external_attr = (0o100755 << 16)
        info.create_system = 3
        with open(path, "rb") as f:
            z.writestr(info, f.read())
    return buf.getvalue()


def test_native_function(s, d):
    """Native handlers through the Lambda API: the daemon launches `sluice __launch`, which
    confines the static handler; abuse becomes a function error and the daemon keeps serving."""
    c = lam(d.endpoint)
    for name in ("echo", "abuse"):
        c.create_function(FunctionName="native-" + name, Runtime="native", Role=ROLE,
                          Handler=name, Code={"ZipFile": native_zip(name)}, Timeout=2)
    r1, b1 = invoke(c, "native-echo", {"Records": []})
    r2, b2 = invoke(c, "native-echo", {"Records": []})
    s.eq("native ok", r1["StatusCode"], 200)
    s.check("native no function error", "FunctionError" not in r1, r1)
    s.check("native warm worker reused", isinstance(b1, dict) and isinstance(b2, dict) and
            b2.get("count") == b1.get("count", 0) + 1, (b1, b2))
    for attack, want in (("exec", None), ("segv", "Runtime.ExitError"),
                         ("loop", "Sandbox.Timedout"), ("ptrace", "Runtime.SeccompViolation"),
                         ("open_shadow", None), ("write_outside", None)):
        r, b = invoke(c, "native-abuse", {"attack": attack})
        if want:
            s.eq("native %s error" % attack, (r.get("FunctionError"), b.get("errorType")),
                 ("Unhandled", want))
        else:  # contained: the call fails inside the handler (errno) or the handler is killed
            s.check("native %s contained" % attack,
                    r.get("FunctionError") == "Unhandled" or (b or {}).get("rc", 0) != 0 or
                    (b or {}).get("ok") != 1, (r.get("FunctionError"), b))
    r, b = invoke(c, "native-abuse", {"attack": "ok"})
    s.eq("native worker respawned after abuse", b, {"ok": 1})
    r, b = invoke(c, "native-echo", {"Records": []})
    s.eq("daemon still serving", r["StatusCode"], 200)


def test_restart_persistence(s):
    d = st.Daemon().start()
    try:
        c = lam(d.endpoint)
        create(c, "keep", OK_HANDLER)
        invoke(c, "keep", {"n": 1})
        data_dir = d.data_dir
        s.eq("clean stop", d.stop(cleanup=False), 0)
        d2 = st.Daemon(data_dir=data_dir).start()
        try:
            c2 = lam(d2.endpoint)
            s.eq("function survives restart",
                 c2.get_function_configuration(FunctionName="keep")["Handler"], "main.handler")
            r, body = invoke(c2, "keep", {"n": 5})
            s.eq("invocable after restart", body["n"], 5)
        finally:
            d2.stop(cleanup=False)
    finally:
        import shutil
        shutil.rmtree(d.data_dir, ignore_errors=True)


def main():
    import tempfile
    s = st.Suite("lambda functions")
    tmp = tempfile.mkdtemp(prefix="sluice-fn-")
    with st.Daemon() as d:
        s.run(test_cli_lifecycle, s, d, tmp)
        s.run(test_invoke_results_and_errors, s, d)
        s.run(test_api_errors, s, d)
        s.run(test_reserved_concurrency, s, d)
        s.run(test_atomic_update, s, d)
        s.run(test_kinesis_module, s, d)
        s.run(test_native_function, s, d)
    s.run(test_restart_persistence, s)
    s.finish()


if __name__ == "__main__":
    main()
