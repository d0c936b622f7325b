#!/usr/bin/python3
"""The sluice command line against a real daemon: every client command at least once, --json
outputs parsed, exit statuses 0/1/2, the unreachable-daemon hint, the admin endpoints (/metrics,
/sluice/logs, /sluice/dlq), `up` applied twice (the second run changes nothing), `up --watch`
redeploying within a second of a file change, `top --once`, SigV4 signing against --auth."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sluice_test import (SLUICE_BIN, Daemon, Suite, boto3_client, free_port,  # noqa: E402
                         request)

S = Suite("cli")
D = [None]
TMP = tempfile.mkdtemp(prefix="sluice-cli-")
SQS = "arn:aws:sqs:us-east-1:000000000000:cli-dlq"

HANDLER = """
function handler(event, context)
    local n = 0
    for _, r in ipairs(event.Records or {}) do
        local d = base64.decode(r.kinesis.data)
        log.info("got " .. d)
        if d:find("poison") then error("poison record") end
        n = n + 1
    end
    if event.fail then error("asked to fail") end
    return { count = n, version = "VERSION", mode = os.getenv and os.getenv("MODE") or "?" }
end
"""


def cli(*args, stdin=None, env=None, endpoint=True, timeout=60):
    """Runs `sluice ARGS`; returns (rc, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("SLUICE_ACCESS_KEY_ID", None)
    e.pop("SLUICE_SECRET_ACCESS_KEY", None)
    if endpoint:
        e["SLUICE_ENDPOINT"] = D[0].endpoint
    if env:
        e.update(env)
    p = subprocess.run([SLUICE_BIN] + list(args), input=stdin, capture_output=True, text=True,
                       env=e, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def cli_ok(label, *args, **kw):
    rc, out, err = cli(*args, **kw)
    S.check(label + " exits 0", rc == 0, "rc=%d stderr=%s stdout=%s" % (rc, err[-500:], out[-300:]))
    return out


def cli_json(label, *args, **kw):
    out = cli_ok(label, *args, "--json", **kw)
    try:
        return json.loads(out)
    except ValueError:
        S.check(label + " prints JSON", False, repr(out[:300]))
        return None


def write_handler(path, version):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "main.lua"), "w") as f:
        f.write(HANDLER.replace("VERSION", version))


def wait_for(fn, timeout=10.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


# ---- usage, help, unreachable -------------------------------------------------------------------

COMMANDS = [["stream", "create"], ["stream", "list"], ["stream", "describe"], ["stream", "delete"],
            ["stream", "split"], ["stream", "merge"], ["stream", "scale"], ["put"], ["tail"],
            ["fn", "deploy"], ["fn", "list"], ["fn", "get"], ["fn", "delete"], ["invoke"],
            ["logs"], ["map", "create"], ["map", "list"], ["map", "get"], ["map", "update"],
            ["map", "enable"], ["map", "disable"], ["map", "delete"], ["dlq", "read"], ["up"],
            ["top"]]


def test_help_and_usage():
    for c in COMMANDS:
        rc, out, _ = cli(*(c + ["--help"]), endpoint=False)
        S.eq("%s --help rc" % " ".join(c), rc, 0)
        S.check("%s --help text" % " ".join(c), out.startswith("usage: sluice " + " ".join(c))
                and "--json" in out and "--endpoint" in out, out[:200])
    rc, out, _ = cli("stream", "--help", endpoint=False)
    S.check("group help lists commands", rc == 0 and "scale" in out and "split" in out, out)
    for args, label in [(["stream", "create"], "missing argument"),
                        (["stream", "create", "x", "--shards", "zero"], "bad integer"),
                        (["stream", "create", "x", "--bogus"], "unknown option"),
                        (["stream", "frobnicate"], "unknown subcommand"),
                        (["frobnicate"], "unknown command"),
                        (["stream"], "group without subcommand"),
                        (["tail", "s", "--from", "middle"], "bad --from"),
                        (["fn", "deploy", TMP, "--name", "x"], "deploy without runtime"),
                        (["fn", "deploy", TMP, "--name", "x", "--runtime", "cobol",
                          "--handler", "h"], "bad runtime"),
                        (["invoke", "f", "--payload", "{nope"], "invalid payload"),
                        (["map", "update", "u"], "update without options"),
                        (["map", "create", "s", "f", "--filter", "[1]"], "bad filter"),
                        (["stream", "list", "extra"], "extra argument"),
                        (["stream", "list", "--endpoint", "ftp://x"], "bad endpoint")]:
        rc, _, err = cli(*args)
        S.eq("usage error (%s) rc" % label, rc, 2)
        S.check("usage error (%s) message" % label, err.startswith("sluice: "), err)


def test_unreachable():
    port = free_port()
    ep = "http://127.0.0.1:%d" % port
    for args in (["stream", "list"], ["fn", "list"], ["top", "--once"], ["tail", "s"],
                 ["up", os.path.join(TMP, "missing-manifest-is-checked-first.json")]):
        rc, out, err = cli(*args, env={"SLUICE_ENDPOINT": ep}, endpoint=False)
        S.eq("unreachable %s rc" % args[0], rc, 1)
        if args[0] != "up":
            S.eq("unreachable %s hint" % args[0], err.strip(),
                 "sluice: cannot reach the daemon at %s \u2014 start it with: sluice serve" % ep)
    rc, _, err = cli("stream", "list", "--endpoint", ep, endpoint=False)
    S.check("--endpoint wins", rc == 1 and ep in err, err)


# ---- streams --------------------------------------------------------------------------------


def test_streams():
    kin = boto3_client(D[0].endpoint)
    d = cli_json("stream create", "stream", "create", "clis", "--shards", "2", "--retention", "48")
    S.eq("create shards", d and d["OpenShardCount"], 2)
    S.eq("create retention", d and d["RetentionPeriodHours"], 48)
    S.eq("create status", d and d["StreamStatus"], "ACTIVE")
    rc, _, err = cli("stream", "create", "clis")
    S.eq("create duplicate rc", rc, 1)
    S.check("create duplicate message", "ResourceInUseException" in err, err)
    out = cli_ok("stream list", "stream", "list")
    S.check("list table", "clis" in out and "NAME" in out and "PROVISIONED" in out, out)
    ls = cli_json("stream list", "stream", "list")
    S.check("list json", any(s["StreamName"] == "clis" for s in ls or []), str(ls))
    desc = cli_json("stream describe", "stream", "describe", "clis")
    S.eq("describe shards", len(desc["Shards"]) if desc else None, 2)
    out = cli_ok("stream describe human", "stream", "describe", "clis")
    S.check("describe human", "shardId-000000000001" in out and "OPEN" in out, out)

    p = cli_json("put args", "put", "clis", "a1", "a2", "a3", "--key", "k")
    S.eq("put args count", p and p["RecordCount"], 3)
    S.eq("put args failed", p and p["FailedRecordCount"], 0)
    S.eq("put args results", len(p["Records"]) if p else None, 3)
    out = cli_ok("put one", "put", "clis", "single", "--key", "k")
    S.check("put one human", out.startswith("put 1 record to clis: shardId-"), out)
    lines = "".join("f%d\n" % i for i in range(1200))
    path = os.path.join(TMP, "records.txt")
    with open(path, "w") as f:
        f.write(lines + "\n\n")  # blank lines are skipped
    p = cli_json("put --file", "put", "clis", "--file", path, "--key", "k")
    S.eq("put --file count (3 batches)", p and p["RecordCount"], 1200)
    p = cli_json("put stdin", "put", "clis", "--key", "k", stdin="s1\ns2\r\n")
    S.eq("put stdin count", p and p["RecordCount"], 2)
    p = cli_json("put random keys", "put", "clis", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8")
    shards = {r["ShardId"] for r in p["Records"]} if p else set()
    S.check("no --key spreads records over shards", len(shards) == 2, str(shards))
    rc, _, err = cli("put", "nosuch", "x")
    S.check("put to missing stream", rc == 1 and "ResourceNotFoundException" in err, err)

    # The daemon itself holds every record: count them with boto3.
    total = 0
    for sh in kin.list_shards(StreamName="clis")["Shards"]:
        it = kin.get_shard_iterator(StreamName="clis", ShardId=sh["ShardId"],
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        total += len(kin.get_records(ShardIterator=it, Limit=10000)["Records"])
    S.eq("boto3 sees every record put", total, 3 + 1 + 1200 + 2 + 8)

    # tail: decoded data, --count, --json; key "k" keeps its order.
    rc, out, _ = cli("tail", "clis", "--count", "1214", "--timeout", "20")
    got = out.splitlines()
    S.eq("tail rc", rc, 0)
    S.eq("tail count", len(got), 1214)
    keyed = [x for x in got if not x.startswith("x")]
    want = ["a1", "a2", "a3", "single"] + ["f%d" % i for i in range(1200)] + ["s1", "s2"]
    S.check("tail per-key order", keyed == want, "first difference at %s" % next(
        (i for i, (a, b) in enumerate(zip(keyed, want)) if a != b), min(len(keyed), len(want))))
    rc, out, _ = cli("tail", "clis", "--count", "2", "--json")
    recs = [json.loads(x) for x in out.splitlines()]
    S.check("tail --json", rc == 0 and len(recs) == 2 and "SequenceNumber" in recs[0]
            and "Data" in recs[0], out)
    t0 = time.monotonic()
    rc, out, _ = cli("tail", "clis", "--from", "latest", "--timeout", "1")
    S.check("tail --from latest prints nothing new", rc == 0 and out == "", out[:200])
    S.check("tail --timeout ends", time.monotonic() - t0 < 10)

    # resharding: split, merge, scale; tail follows children in order.
    sp = cli_json("stream split", "stream", "split", "clis", "0")
    open_ids = lambda shards: sorted(s["ShardId"] for s in shards  # noqa: E731
                                     if "EndingSequenceNumber" not in s["SequenceNumberRange"])
    S.eq("split children", open_ids(sp["Shards"]) if sp else None,
         ["shardId-000000000001", "shardId-000000000002", "shardId-000000000003"])
    kids = [s for s in (sp or {}).get("Shards", []) if s.get("ParentShardId") ==
            "shardId-000000000000"]
    S.eq("split at the middle", kids[0]["HashKeyRange"]["EndingHashKey"] if kids else None,
         "85070591730234615865843651857942052863")
    cli_ok("put after split", "put", "clis", "after-split", "--key", "k")
    mg = cli_json("stream merge", "stream", "merge", "clis", "shardId-000000000002", "3")
    S.eq("merge", open_ids(mg["Shards"]) if mg else None,
         ["shardId-000000000001", "shardId-000000000004"])
    cli_ok("put after merge", "put", "clis", "after-merge", "--key", "k")
    sc = cli_json("stream scale", "stream", "scale", "clis", "3")
    S.eq("scale", len(open_ids(sc["Shards"])) if sc else None, 3)
    out = cli_ok("scale human", "stream", "scale", "clis", "2")
    S.check("scale human text", "scaled clis from 3 to 2" in out, out)
    cli_ok("put after scale", "put", "clis", "after-scale", "--key", "k")
    rc, out, _ = cli("tail", "clis", "--count", "1217", "--timeout", "20")
    keyed = [x for x in out.splitlines() if not x.startswith("x")]
    S.eq("tail follows resharding in key order", keyed[-3:],
         ["after-split", "after-merge", "after-scale"])
    S.eq("tail reads every shard", len(out.splitlines()), 1217)
    rc, _, err = cli("stream", "split", "clis", "shardId-000000000000")
    S.check("split a closed shard fails", rc == 1 and err.startswith("sluice: "), err)

    out = cli_ok("stream delete", "stream", "delete", "clis")
    S.check("delete human", "deleted stream clis" in out, out)
    rc, _, err = cli("stream", "describe", "clis")
    wait_for(lambda: cli("stream", "describe", "clis")[0] == 1)
    rc, _, err = cli("stream", "describe", "clis")
    S.check("describe after delete", rc == 1 and "ResourceNotFoundException" in err, err)
    d = cli_json("on-demand", "stream", "create", "od", "--on-demand")
    S.eq("on-demand mode", d and d["StreamModeDetails"]["StreamMode"], "ON_DEMAND")
    S.eq("on-demand shards", d and d["OpenShardCount"], 4)


# ---- functions --------------------------------------------------------------------------------


def test_functions():
    code = os.path.join(TMP, "fn1")
    write_handler(code, "v1")
    with open(os.path.join(code, "tool.sh"), "w") as f:
        f.write("#!/bin/sh\necho hi\n")
    os.chmod(os.path.join(code, "tool.sh"), 0o755)
    with open(os.path.join(code, ".swap"), "w") as f:
        f.write("editor junk")
    d = cli_json("fn deploy", "fn", "deploy", code, "--name", "f1", "--runtime", "lua5.4",
                 "--handler", "main.handler", "--env", "MODE=test", "--timeout", "5")
    S.check("deploy created", d and d["Actions"][0]["action"].startswith("created"), str(d))
    out = cli_ok("fn deploy again", "fn", "deploy", code, "--name", "f1", "--runtime", "lua5.4",
                 "--handler", "main.handler", "--env", "MODE=test", "--timeout", "5")
    S.eq("deploy unchanged", out.strip(), "function f1: up to date")
    os.utime(os.path.join(code, "main.lua"), (time.time() + 60, time.time() + 60))
    out = cli_ok("fn deploy after touch", "fn", "deploy", code, "--name", "f1", "--runtime",
                 "lua5.4", "--handler", "main.handler", "--env", "MODE=test", "--timeout", "5")
    S.eq("zip depends on content only (mtime ignored)", out.strip(), "function f1: up to date")
    out = cli_ok("fn deploy config", "fn", "deploy", code, "--name", "f1", "--runtime", "lua5.4",
                 "--handler", "main.handler", "--env", "MODE=test", "--timeout", "5",
                 "--memory", "256")
    S.check("deploy config change", "configuration updated (memory 128 -> 256 MB)" in out, out)
    unpacked = [os.path.join(r, n) for r, _, ns in os.walk(os.path.join(D[0].data_dir,
                                                                        "functions", "f1"))
                for n in ns]
    tools = [p for p in unpacked if p.endswith("tool.sh")]
    S.check("zip keeps exec bits", tools and os.access(tools[0], os.X_OK), str(unpacked))
    S.check("zip skips dot files", not any(p.endswith(".swap") for p in unpacked), str(unpacked))

    zpath = os.path.join(TMP, "f2.zip")
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("main.lua", HANDLER.replace("VERSION", "zip"))
    cli_ok("fn deploy zip", "fn", "deploy", zpath, "--name", "f2", "--runtime", "lua5.4",
           "--handler", "main.handler")
    ls = cli_json("fn list", "fn", "list")
    S.eq("fn list names", sorted(f["FunctionName"] for f in ls or []), ["f1", "f2"])
    out = cli_ok("fn list human", "fn", "list")
    S.check("fn list table", "f1" in out and "lua5.4" in out and "256 MB" in out, out)
    g = cli_json("fn get", "fn", "get", "f1")
    S.eq("fn get env", g and g["Configuration"]["Environment"]["Variables"], {"MODE": "test"})
    S.eq("fn get timeout", g and g["Configuration"]["Timeout"], 5)
    out = cli_ok("fn get human", "fn", "get", "f1")
    S.check("fn get human text", "MODE=test" in out and "main.handler" in out, out)

    out = cli_ok("invoke", "invoke", "f1", "--payload", '{"Records":[]}')
    S.eq("invoke result", json.loads(out).get("version"), "v1")
    pfile = os.path.join(TMP, "payload.json")
    with open(pfile, "w") as f:
        f.write('{"Records":[]}')
    out = cli_ok("invoke @file", "invoke", "f2", "--payload", "@" + pfile)
    S.eq("invoke @file result", json.loads(out).get("version"), "zip")
    rc, out, err = cli("invoke", "f1", "--payload", '{"fail":true}')
    S.eq("invoke function error rc", rc, 1)
    S.check("invoke function error body", "asked to fail" in out, out)
    S.check("invoke function error hint", "function error (Unhandled)" in err, err)
    rc, out, _ = cli("invoke", "f1", "--payload", '{"fail":true}', "--json")
    j = json.loads(out) if out.strip() else {}
    S.check("invoke --json function error", rc == 1 and j.get("FunctionError") == "Unhandled"
            and "asked to fail" in j["Payload"]["errorMessage"], out)
    j = cli_json("invoke --tail", "invoke", "f1", "--tail")
    S.check("invoke --tail log", j and "START RequestId" in j.get("LogResult", "")
            and "REPORT RequestId" in j["LogResult"], str(j))
    rc, _, err = cli("invoke", "f1", "--tail")
    S.check("invoke --tail prints the log to stderr", rc == 0 and "START RequestId" in err, err)
    rc, _, err = cli("invoke", "nosuch")
    S.check("invoke missing function", rc == 1 and "ResourceNotFoundException" in err, err)

    out = cli_ok("logs", "logs", "f1")
    S.check("logs text", out.count("START RequestId") >= 4 and "END RequestId" in out, out[-300:])
    lg = cli_ok("logs --json", "logs", "f1", "--json")
    chunks = [json.loads(x) for x in lg.splitlines()]
    S.check("logs --json chunks", chunks and chunks[0]["Offset"] == 0
            and chunks[-1]["NextOffset"] >= len(chunks[-1]["Text"]), lg[:300])
    rc, _, err = cli("logs", "nosuch")
    S.check("logs of a missing function", rc == 1 and "ResourceNotFoundException" in err, err)

    # logs -f picks up new invocations until interrupted
    e = dict(os.environ, SLUICE_ENDPOINT=D[0].endpoint)
    p = subprocess.Popen([SLUICE_BIN, "logs", "f2", "-f"], stdout=subprocess.PIPE, text=True,
                         env=e)
    time.sleep(0.5)
    cli_ok("invoke while following", "invoke", "f2", "--payload", '{"Records":[]}')
    time.sleep(0.8)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=10)
    S.eq("logs -f exits 0 on Ctrl-C", p.returncode, 0)
    S.check("logs -f shows the new invocation", out.count("START RequestId") >= 2, out)

    # the admin endpoint directly: offsets
    st, hdr, body = request(D[0].port, "GET", "/sluice/logs/f1?offset=0&max=10")
    S.check("logs endpoint chunk", st == 200 and len(body) == 10 and
            hdr.get("x-sluice-next-offset") == "10", "%s %r %r" % (st, hdr, body))
    st, hdr, body2 = request(D[0].port, "GET", "/sluice/logs/f1?offset=10")
    S.check("logs endpoint continues", st == 200 and body2 and int(hdr["x-sluice-next-offset"])
            == 10 + len(body2), str(st))
    st, _, _ = request(D[0].port, "GET", "/sluice/logs/f1?offset=abc")
    S.eq("logs endpoint bad offset", st, 400)
    st, hdr, _ = request(D[0].port, "GET", "/sluice/logs/nosuch")
    S.check("logs endpoint missing function", st == 404 and
            hdr.get("x-amzn-errortype") == "ResourceNotFoundException", str(hdr))

    out = cli_ok("fn delete", "fn", "delete", "f2")
    S.check("fn delete text", "deleted function f2" in out, out)
    rc, _, err = cli("fn", "get", "f2")
    S.check("fn get after delete", rc == 1 and "ResourceNotFoundException" in err, err)


# ---- mappings, dlq, top, metrics ---------------------------------------------------------------


def test_mappings():
    cli_ok("stream for mapping", "stream", "create", "ms")
    code = os.path.join(TMP, "mfn")
    write_handler(code, "m1")
    cli_ok("deploy mapped function", "fn", "deploy", code, "--name", "mfn", "--runtime", "lua5.4",
           "--handler", "main.handler")
    m = cli_json("map create", "map", "create", "ms", "mfn", "--batch-size", "10", "--bisect",
                 "--max-retries", "0", "--on-failure", SQS, "--report-failures",
                 "--filter", '{"data":{"kind":["x"]}}', "--window", "0")
    uuid = m and m["UUID"]
    S.check("map create uuid", uuid and len(uuid) == 36, str(m))
    S.eq("map create batch", m and m["BatchSize"], 10)
    S.eq("map create bisect", m and m["BisectBatchOnFunctionError"], True)
    S.eq("map create destination", m and m["DestinationConfig"]["OnFailure"]["Destination"], SQS)
    S.eq("map create response types", m and m["FunctionResponseTypes"],
         ["ReportBatchItemFailures"])
    rc, _, err = cli("map", "create", "ms", "mfn")
    S.check("map create duplicate", rc == 1 and "ResourceConflictException" in err, err)
    rc, _, err = cli("map", "create", "nosuch", "mfn")
    S.check("map create missing stream", rc == 1 and "ResourceNotFoundException" in err, err)
    ls = cli_json("map list", "map", "list")
    S.check("map list", any(x["UUID"] == uuid for x in ls or []), str(ls))
    S.eq("map list --function", len(cli_json("map list f", "map", "list", "--function", "mfn")
                                    or []), 1)
    S.eq("map list --function other", cli_json("map list f2", "map", "list", "--function",
                                               "f1"), [])
    S.eq("map list --stream", len(cli_json("map list s", "map", "list", "--stream", "ms") or []),
         1)
    out = cli_ok("map list human", "map", "list")
    S.check("map list table", uuid in out and "mfn" in out, out)
    g = cli_json("map get", "map", "get", uuid)
    S.eq("map get filter", g and g["FilterCriteria"]["Filters"][0]["Pattern"],
         '{"data":{"kind":["x"]}}')
    out = cli_ok("map get human", "map", "get", uuid)
    S.check("map get human text", "bisect on error   yes" in out and SQS in out, out)
    u = cli_json("map update", "map", "update", uuid, "--batch-size", "5", "--clear-filters",
                 "--no-report-failures")
    S.eq("map update batch", u and u["BatchSize"], 5)
    g = cli_json("map get after update", "map", "get", uuid)
    S.check("map update cleared filters", g and "FilterCriteria" not in g, str(g))
    S.eq("map update response types", g and g["FunctionResponseTypes"], [])
    d = cli_json("map disable", "map", "disable", uuid)
    S.check("map disable", d and d["State"] in ("Disabling", "Disabled", "Updating"), str(d))
    wait_for(lambda: (cli_json("map get", "map", "get", uuid) or {}).get("State") == "Disabled")
    e = cli_json("map enable", "map", "enable", uuid)
    S.check("map enable", e and e["State"] in ("Enabling", "Enabled", "Updating"), str(e))
    wait_for(lambda: (cli_json("map get", "map", "get", uuid) or {}).get("State") == "Enabled")

    # records flow to the function; a poison record lands in the on-failure queue
    cli_ok("put to mapped stream", "put", "ms", "good-1", "good-2", "--key", "a")
    got = wait_for(lambda: "got good-2" in cli("logs", "mfn")[1], timeout=15)
    S.check("mapping invoked the function", got)
    cli_ok("put poison", "put", "ms", "poison-pill", "--key", "b")
    msgs = wait_for(lambda: cli_json("dlq read", "dlq", "read", SQS), timeout=20)
    S.check("dlq read --json", msgs and msgs[0]["requestContext"]["condition"] ==
            "RetryAttemptsExhausted" and msgs[0]["KinesisBatchInfo"]["batchSize"] == 1,
            str(msgs))
    rc, out, err = cli("dlq", "read", SQS)
    S.check("dlq read human: one JSON line per message", rc == 0 and len(out.splitlines()) == 1
            and json.loads(out)["requestContext"]["condition"] == "RetryAttemptsExhausted", out)
    S.check("dlq read human: summary on stderr", err.startswith("1 message in " + SQS) and
            "RetryAttemptsExhausted, 1 record from" in err, err)
    S.eq("dlq of an unused queue", cli_json("dlq empty", "dlq", "read",
                                            "arn:aws:sqs:us-east-1:000000000000:empty"), [])
    rc, _, err = cli("dlq", "read", "not-an-arn")
    S.check("dlq read bad destination", rc == 1 and "InvalidParameterValueException" in err, err)
    st, _, _ = request(D[0].port, "GET", "/sluice/dlq")
    S.eq("dlq endpoint without destination", st, 400)

    # metrics and top
    st, hdr, body = request(D[0].port, "GET", "/metrics")
    text = body.decode()
    S.check("metrics text format", st == 200 and hdr.get("content-type", "").startswith(
        "text/plain") and "# TYPE sluice_stream_records_total counter" in text, text[:300])
    S.check("metrics per shard", 'sluice_stream_records_total{stream="ms",'
            'shard="shardId-000000000000"} 3' in text, text)
    S.check("metrics per mapping", 'sluice_esm_records_discarded_total{uuid="%s",function="mfn"}'
            ' 1' % uuid in text and 'sluice_esm_mapping_info{uuid="%s"' % uuid in text, text)
    S.check("metrics per mapping shard", 'sluice_esm_invocations_total{uuid="%s",function="mfn",'
            'shard="shardId-000000000000"}' % uuid in text, text)
    S.check("metrics per function", 'sluice_function_invocations_total{function="mfn"}' in text
            and 'sluice_function_duration_ms{function="mfn",quantile="0.99"}' in text, text)
    st, _, _ = request(D[0].port, "POST", "/metrics")
    S.eq("metrics POST", st, 405)
    t = cli_json("top --once", "top", "--once")
    S.check("top shards", t and any(s["stream"] == "ms" and s["records"] == 3
                                     for s in t["shards"]), str(t))
    S.check("top mappings", t and any(m["uuid"] == uuid and m["records_discarded"] == 1 and
                                      "shard" not in m for m in t["mappings"]), str(t))
    S.check("top functions", t and any(f["function"] == "mfn" and f["invocations"] >= 2 and
                                       f["errors"] >= 1 for f in t["functions"]), str(t))
    out = cli_ok("top --once human", "top", "--once")
    S.check("top human", "STREAM" in out and "MAPPING" in out and "FUNCTION" in out and
            "ms -> mfn" in out and "\033" not in out, out)
    dl = cli_json("map delete", "map", "delete", uuid)
    S.eq("map delete state", dl and dl["State"], "Deleting")
    wait_for(lambda: cli("map", "get", uuid)[0] == 1)
    rc, _, err = cli("map", "get", uuid)
    S.check("map get after delete", rc == 1 and "ResourceNotFoundException" in err, err)


# ---- up ---------------------------------------------------------------------------------------


def manifest(app, batch=100, version="u1"):
    write_handler(os.path.join(app, "hello"), version)
    gen = os.path.join(app, "gen")
    os.makedirs(gen, exist_ok=True)
    with open(os.path.join(gen, "template.lua"), "w") as f:
        f.write(HANDLER.replace("VERSION", "built"))
    with open(os.path.join(gen, "Makefile"), "w") as f:
        f.write("main.lua: template.lua\n\tcp template.lua main.lua\n")
    m = {"streams": [{"name": "events", "shards": 2, "retentionHours": 24}],
         "functions": [{"name": "hello", "runtime": "lua5.4", "handler": "main.handler",
                        "code": "hello", "memory": 128, "timeout": 3, "env": {"MODE": "up"},
                        "reservedConcurrency": 2},
                       {"name": "gen", "runtime": "lua5.4", "handler": "main.handler",
                        "code": "gen", "build": "make"}],
         "mappings": [{"stream": "events", "function": "hello",
                       "startingPosition": "TRIM_HORIZON", "batchSize": batch,
                       "maximumBatchingWindowInSeconds": 0, "parallelizationFactor": 1,
                       "bisectBatchOnFunctionError": False, "maximumRetryAttempts": -1,
                       "maximumRecordAgeInSeconds": -1, "reportBatchItemFailures": False,
                       "tumblingWindowInSeconds": 0,
                       "filters": ["{\"data\":{\"type\":[\"order\"]}}"],
                       "onFailure": "arn:aws:sqs:us-east-1:000000000000:dlq", "enabled": True}]}
    path = os.path.join(app, "sluice.json")
    with open(path, "w") as f:
        json.dump(m, f, indent=2)
    return path


def test_up():
    app = os.path.join(TMP, "app")
    path = manifest(app)
    rc, out, err = cli("up", path)
    S.eq("up rc", rc, 0)
    lines = out.splitlines()
    for want in ["stream events: created (2 shards, PROVISIONED)",
                 "function hello: created (lua5.4, handler main.handler,",
                 "function hello: reserved concurrency 2",
                 "function gen: created", "mapping events -> hello: created ("]:
        S.check("up reports: " + want, any(x.startswith(want) for x in lines), out + err)
    S.eq("up summary", lines[-1] if lines else "", "5 changes applied")
    S.check("build ran in the code directory", os.path.exists(os.path.join(app, "gen",
                                                                          "main.lua")))
    out = cli_ok("invoke built function", "invoke", "gen")
    S.eq("built function runs", json.loads(out).get("version"), "built")
    rc, out, _ = cli("up", path)
    S.eq("up twice rc", rc, 0)
    S.eq("up twice reports no changes", out.strip(), "no changes")
    j = cli_json("up --json unchanged", "up", path)
    S.check("up --json no changes", j and j["changes"] == 0 and j["actions"] == [], str(j))
    g = cli_json("function from manifest", "fn", "get", "hello")
    S.eq("manifest env", g and g["Configuration"]["Environment"]["Variables"], {"MODE": "up"})
    S.eq("manifest concurrency", g and g["Concurrency"]["ReservedConcurrentExecutions"], 2)
    mp = cli_json("mapping from manifest", "map", "list", "--function", "hello")
    S.check("manifest mapping", mp and len(mp) == 1 and
            mp[0]["FilterCriteria"]["Filters"][0]["Pattern"] == '{"data":{"type":["order"]}}',
            str(mp))

    manifest(app, batch=7, version="u2")
    with open(path) as f:
        m = json.load(f)
    m["streams"][0]["shards"] = 3
    m["functions"][0]["memory"] = 256
    with open(path, "w") as f:
        json.dump(m, f)
    j = cli_json("up changes", "up", path)
    acts = {(a["kind"], a["action"].split(" (")[0]) for a in (j or {}).get("actions", [])}
    S.eq("up applies exactly the changes", acts, {
        ("stream", "scaled 2 -> 3 shards"), ("function", "code updated"),
        ("function", "configuration updated"), ("mapping", "updated")})
    S.eq("up after changes: none left", cli("up", path)[1].strip(), "no changes")
    out = cli_ok("invoke after up", "invoke", "hello")
    S.eq("up deployed the new code", json.loads(out).get("version"), "u2")

    bad = os.path.join(TMP, "bad.json")
    for text, label, want in [("{nope", "not JSON", "not valid JSON"),
                              ('{"streams":[{"name":"x","shardz":1}]}', "unknown key",
                               'unknown key "shardz"'),
                              ('{"functions":[{"name":"x"}]}', "missing field",
                               '"runtime" is required'),
                              ('{"mappings":[{"stream":"s","function":"f","batchSize":0}]}',
                               "out of range", '"batchSize" must be an integer')]:
        with open(bad, "w") as f:
            f.write(text)
        rc, _, err = cli("up", bad)
        S.check("bad manifest (%s)" % label, rc == 1 and want in err, err)
    rc, _, err = cli("up", os.path.join(TMP, "none.json"))
    S.check("missing manifest", rc == 1 and "cannot read manifest" in err, err)

    # --watch: a code change is live within a second; SIGINT ends with status 0
    e = dict(os.environ, SLUICE_ENDPOINT=D[0].endpoint)
    p = subprocess.Popen([SLUICE_BIN, "up", path, "--watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e)
    started = wait_for(lambda: "v" if os.path.exists("/proc/%d" % p.pid) else None)
    time.sleep(1.0)  # initial apply done, watches in place
    S.check("watch is running", started and p.poll() is None)
    src = HANDLER.replace("VERSION", "w1")
    t0 = time.monotonic()
    with open(os.path.join(app, "hello", "main.lua"), "w") as f:
        f.write(src)
    seen = None
    while time.monotonic() - t0 < 5:
        rc, out, _ = cli("invoke", "hello")
        if rc == 0 and json.loads(out).get("version") == "w1":
            seen = time.monotonic() - t0
            break
        time.sleep(0.02)
    S.check("up --watch redeploys within a second", seen is not None and seen < 1.0,
            "after %s s" % seen)
    with open(os.path.join(app, "gen", "template.lua"), "w") as f:
        f.write(HANDLER.replace("VERSION", "rebuilt"))
    ok = wait_for(lambda: json.loads(cli("invoke", "gen")[1] or "{}").get("version") ==
                  "rebuilt", timeout=5)
    S.check("up --watch reruns the build", ok)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    S.eq("up --watch exits 0 on Ctrl-C", p.returncode, 0)
    S.check("up --watch reports the redeploy", "function hello: code updated" in out, out + err)


# ---- signing ---------------------------------------------------------------------------------


def test_auth():
    creds = os.path.join(TMP, "creds")
    with open(creds, "w") as f:
        f.write("AKIDCLI secret-cli\n")
    d = Daemon(["--auth", creds, "--transition-ms", "20"]).start()
    try:
        good = {"SLUICE_ENDPOINT": d.endpoint, "SLUICE_ACCESS_KEY_ID": "AKIDCLI",
                "SLUICE_SECRET_ACCESS_KEY": "secret-cli"}
        rc, _, err = cli("stream", "create", "signed", env=good, endpoint=False)
        S.check("signed Kinesis call", rc == 0, err)
        rc, _, err = cli("fn", "list", env=good, endpoint=False)
        S.check("signed Lambda call", rc == 0, err)
        rc, _, err = cli("stream", "list", env={"SLUICE_ENDPOINT": d.endpoint}, endpoint=False)
        S.check("unsigned call refused", rc == 1 and "UnrecognizedClientException" in err, err)
        bad = dict(good, SLUICE_SECRET_ACCESS_KEY="wrong")
        rc, _, err = cli("stream", "list", env=bad, endpoint=False)
        S.check("wrong secret refused", rc == 1 and "InvalidSignatureException" in err, err)
    finally:
        d.stop()


def main():
    D[0] = Daemon(["--transition-ms", "20"]).start()
    try:
        for t in (test_help_and_usage, test_unreachable, test_streams, test_functions,
                  test_mappings, test_up, test_auth):
            S.run(t)
    finally:
        D[0].stop()
        shutil.rmtree(TMP, ignore_errors=True)
    S.finish()


if __name__ == "__main__":
    main()
