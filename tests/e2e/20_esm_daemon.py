#!/usr/bin/python3
"""Event-source mappings end to end against the real daemon (SPEC 3, 5.4): Lua handlers deployed
from zips consume Kinesis streams through mappings created with boto3 and the AWS CLI.

Every handler records what it was given by writing to a second stream with kinesis.put_record
(one record per invocation: {"ev": "start"|"end", "recs": [[data, key, seq, shard], ...]}); the
test reads that stream back with GetRecords and asserts the exact sequence of batches. The
"start" record is written before the handler's work, "end" just before it returns, so a batch
cut short by SIGKILL is visible as a start without an end.

Covers: restart after SIGKILL mid-batch (nothing skipped, per-shard order, only the in-flight
batch delivered again, resumption right after the durable checkpoint read from the catalog), a
clean stop mid-batch (nothing delivered twice), a stream deleted and created again under the
same name (consumed from its trim horizon, live and after a restart), split and merge during
consumption (per-key order, children after their parents), a poison record with bisect and
retries exhausted (exact invocation sequence and the SPEC 3.7 on-failure record read through
/sluice/dlq), ReportBatchItemFailures (retried suffix), disable/enable (also with a batch in
flight) and BatchSize updates, ParallelizationFactor per-key order, two mappings on one stream,
the AWS CLI control plane (202s, states, UUID/ARN shapes, 404, 409) and the mapping counters of
GET /metrics.
"""
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import zipfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sluice_test as st  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/lambda-role"
ENV = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
           AWS_DEFAULT_REGION="us-east-1", AWS_PAGER="")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HALF = 2 ** 127  # first hash key of shard 1 in a 2-shard stream

# A handler template. SEEN: stream the handler reports to; BUSY_MS: wall-clock busy loop per
# batch (context.getRemainingTimeInMillis is wall time; os.clock would be process CPU time);
# MODE: "ok", "poison" (error when a record's data is "poison") or "partial" (the first time a
# record "bad" is seen, report it as the batch item failure).
HANDLER = r"""
local SEEN, BUSY_MS, MODE = "%s", %d, "%s"
local reported = {}
function handler(event, context)
  local recs = {}
  for _, r in ipairs(event.Records) do
    recs[#recs + 1] = {base64.decode(r.kinesis.data), r.kinesis.partitionKey,
                       r.kinesis.sequenceNumber, string.sub(r.eventID, 1, 20)}
  end
  kinesis.put_record{StreamName = SEEN, PartitionKey = "p",
                     Data = json.encode({ev = "start", recs = recs})}
  if BUSY_MS > 0 then
    local stop = context.getRemainingTimeInMillis() - BUSY_MS
    while context.getRemainingTimeInMillis() > stop do end
  end
  local result = nil
  for _, r in ipairs(recs) do
    if MODE == "poison" and r[1] == "poison" then error("poison record " .. r[3]) end
    if MODE == "partial" and r[1] == "bad" and not reported[r[3]] then
      reported[r[3]] = true
      result = {batchItemFailures = {{itemIdentifier = r[3]}}}
    end
  end
  kinesis.put_record{StreamName = SEEN, PartitionKey = "p",
                     Data = json.encode({ev = "end", recs = recs})}
  return result
end
"""


def zip_of(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return buf.getvalue()


def lam(endpoint):
    import boto3
    from botocore.config import Config
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=Config(retries={"max_attempts": 0}, read_timeout=30))


def aws(d, *args):
    p = subprocess.run(["/usr/bin/aws", "--endpoint-url", d.endpoint, "--output", "json"] +
                       list(args), env=ENV, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def wait_for(cond, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def make_stream(k, name, shards=1):
    k.create_stream(StreamName=name, ShardCount=shards)
    wait_active(k, name)


def wait_active(k, name):
    return wait_for(lambda: k.describe_stream_summary(StreamName=name)
                    ["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE", 15.0)


def make_function(c, name, seen, busy_ms=0, mode="ok"):
    c.create_function(FunctionName=name, Runtime="lua5.4", Role=ROLE, Handler="main.handler",
                      Code={"ZipFile": zip_of({"main.lua": HANDLER % (seen, busy_ms, mode)})},
                      Timeout=10)


def wait_state(c, uuid, want, timeout=10.0):
    return wait_for(lambda: c.get_event_source_mapping(UUID=uuid)["State"] == want, timeout)


class Seen:
    """Reads a handler's report stream (1 shard) incrementally: events in write order."""

    def __init__(self, k, stream):
        self.k = k
        self.stream = stream
        self.it = None
        self.events = []

    def poll(self):
        if self.it is None:
            self.it = self.k.get_shard_iterator(StreamName=self.stream,
                                                ShardId="shardId-000000000000",
                                                ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while True:
            r = self.k.get_records(ShardIterator=self.it, Limit=10000)
            self.it = r["NextShardIterator"]
            for x in r["Records"]:
                ev = json.loads(x["Data"])
                ev["at"] = x["ApproximateArrivalTimestamp"].timestamp()
                self.events.append(ev)
            if not r["Records"]:
                return self.events

    def starts(self, before=None):
        return [e["recs"] for e in self.poll()
                if e["ev"] == "start" and (before is None or e["at"] < before)]

    def ends(self, before=None):
        return [e["recs"] for e in self.poll()
                if e["ev"] == "end" and (before is None or e["at"] < before)]

    def datas(self, which="start"):
        """Batches as lists of record data, in invocation order."""
        bs = self.starts() if which == "start" else self.ends()
        return [[r[0] for r in b] for b in bs]

    def wait_records(self, n, timeout=10.0, which="end"):
        """Waits until the handler finished batches holding n records in all."""
        return wait_for(lambda: sum(len(b) for b in (self.ends() if which == "end"
                                                      else self.starts())) >= n, timeout)


def put(k, stream, data, key="k", ehk=None):
    kw = {"StreamName": stream, "PartitionKey": key, "Data": data.encode()}
    if ehk is not None:
        kw["ExplicitHashKey"] = str(ehk)
    r = k.put_record(**kw)
    return r["ShardId"], r["SequenceNumber"]


def metrics(d):
    _, _, body = st.request(d.port, "GET", "/metrics")
    return body.decode()


def metric(text, name, uuid, shard=None):
    """Value of sluice_esm_<name>{uuid=...} (the mapping's total, or one shard's)."""
    for line in text.splitlines():
        if not line.startswith(name + "{") or ('uuid="%s"' % uuid) not in line:
            continue
        has_shard = 'shard="' in line
        if (shard is None and not has_shard) or (shard and ('shard="%s"' % shard) in line):
            return float(line.rsplit(" ", 1)[1])
    return None


def dlq(d, arn):
    status, _, body = st.request(d.port, "GET", "/sluice/dlq?destination=" +
                                 urllib.parse.quote(arn, safe=""))
    return status, json.loads(body) if status == 200 else body


# ---- restart after SIGKILL mid-batch ---------------------------------------------------------

def durable_checkpoints(data_dir, uuid):
    """The checkpoints the mapping wrote to the catalog (read while the daemon is dead)."""
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(data_dir, "catalog.db"), uri=True)
    try:
        rows = db.execute("SELECT key, value FROM meta WHERE ns = 'esm-checkpoint'").fetchall()
    finally:
        db.close()
    out = {}
    for key, value in rows:
        if isinstance(value, bytes):
            value = value.decode()
        u, shard = key.split("/", 1)
        if u == uuid:
            out[shard] = json.loads(value)
    return out


def test_restart_after_sigkill(s):
    d = st.Daemon(args=["--transition-ms", "0"]).start()
    data_dir = d.data_dir
    d2 = None
    try:
        k, c = st.boto3_client(d.endpoint), lam(d.endpoint)
        make_stream(k, "in", 2)
        make_stream(k, "in-seen", 1)
        make_function(c, "slow", "in-seen", busy_ms=600)
        shards = ("shardId-000000000000", "shardId-000000000001")
        put_seqs = {sh: [] for sh in shards}
        for i in range(12):
            for n, sh in enumerate(shards):
                got_sh, seq = put(k, "in", "%d-%02d" % (n, i), key="k%d" % i, ehk=n * HALF)
                s.eq("routed to %s" % sh, got_sh, sh)
                put_seqs[sh].append(seq)
        uuid = c.create_event_source_mapping(
            EventSourceArn=st.stream_arn("in"), FunctionName="slow",
            StartingPosition="TRIM_HORIZON", BatchSize=4)["UUID"]
        seen = Seen(k, "in-seen")

        def second_batch_started():
            return sum(1 for b in seen.starts() if b[0][3] == shards[0]) >= 2
        s.check("second batch of shard 0 started", wait_for(second_batch_started, 15.0))
        time.sleep(0.1)   # well inside the 600 ms handler of that batch
        d.proc.kill()
        d.proc.wait()
        ckpts = durable_checkpoints(data_dir, uuid)
        d.proc = None
        d.stop(cleanup=False)
        t_restart = time.time()   # the handlers' reports arriving before this were pre-kill

        d2 = st.Daemon(args=["--transition-ms", "0"], data_dir=data_dir).start()
        k2 = st.boto3_client(d2.endpoint)
        seen2 = Seen(k2, "in-seen")
        s.check("all records handled after the restart",
                wait_for(lambda: all(
                    {r[2] for b in seen2.ends() for r in b if r[3] == sh} >= set(put_seqs[sh])
                    for sh in shards), 20.0))
        everything = seen2.starts()
        pre, pre_ends = seen2.starts(t_restart), seen2.ends(t_restart)
        post = everything[len(pre):]
        s.eq("pre-kill reports come first", everything[:len(pre)], pre)
        s.check("the batch seen at the kill survived it", sum(
            1 for b in pre if b[0][3] == shards[0]) >= 2, pre)
        for sh in shards:
            want = put_seqs[sh]
            pre_b = [[r[2] for r in b] for b in pre if b[0][3] == sh]
            pre_e = [[r[2] for r in b] for b in pre_ends if b[0][3] == sh]
            post_b = [[r[2] for r in b] for b in post if b[0][3] == sh]
            pre_flat = [x for b in pre_b for x in b]
            post_flat = [x for b in post_b for x in b]
            s.eq("%s: order before the kill" % sh, pre_flat, want[:len(pre_flat)])
            s.eq("%s: batches of 4 before the kill" % sh, [len(b) for b in pre_b],
                 [4] * len(pre_b))
            ck = ckpts.get(sh, {}).get("seq", "")
            resume = want.index(ck) + 1 if ck in want else 0
            s.eq("%s: resumed right after the durable checkpoint" % sh, post_flat, want[resume:])
            s.eq("%s: nothing skipped" % sh, sorted(set(pre_flat + post_flat)), sorted(want))
            again = [x for x in post_flat if x in pre_flat]
            # Only the in-flight batch comes again: the last batch started before the kill.
            s.check("%s: only the in-flight batch delivered again" % sh,
                    pre_b and again == pre_b[-1], "again %r last %r" % (again, pre_b[-1:]))
            s.check("%s: checkpoint covers every finished batch but the last" % sh,
                    not pre_e or ck in (pre_e[-1][-1], pre_e[-2][-1] if len(pre_e) > 1 else ""),
                    "ckpt %r ends %r" % (ck, pre_e))
            if sh == shards[0]:
                # The kill was timed inside shard 0's second batch: exactly that one again.
                s.eq("shard 0: batch in flight at the kill", (len(pre_b), len(pre_e)), (2, 1))
                s.eq("shard 0: durable checkpoint = end of the first batch", ck, want[3])
                s.eq("shard 0: redelivered = the in-flight batch", again, want[4:8])
    finally:
        if d.proc:
            d.stop(cleanup=False)
        if d2:
            d2.stop(cleanup=False)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_clean_stop_mid_batch(s):
    """SIGTERM while a batch is in flight: the daemon waits for it, writes its checkpoint and
    exits 0; after the restart nothing is delivered twice."""
    d = st.Daemon(args=["--transition-ms", "0"]).start()
    data_dir = d.data_dir
    d2 = None
    try:
        k, c = st.boto3_client(d.endpoint), lam(d.endpoint)
        make_stream(k, "cs", 1)
        make_stream(k, "cs-seen", 1)
        make_function(c, "cs-fn", "cs-seen", busy_ms=300)
        datas = ["c%02d" % i for i in range(8)]
        for x in datas:
            put(k, "cs", x)
        c.create_event_source_mapping(EventSourceArn=st.stream_arn("cs"), FunctionName="cs-fn",
                                      StartingPosition="TRIM_HORIZON", BatchSize=2)
        seen = Seen(k, "cs-seen")
        s.check("first batch started", wait_for(lambda: len(seen.starts()) >= 1, 10.0))
        time.sleep(0.1)
        s.eq("clean stop with a batch in flight", d.stop(cleanup=False), 0)
        d2 = st.Daemon(args=["--transition-ms", "0"], data_dir=data_dir).start()
        seen2 = Seen(st.boto3_client(d2.endpoint), "cs-seen")
        s.check("all handled after the restart", seen2.wait_records(8, 15.0))
        s.eq("no batch delivered twice", seen2.datas(),
             [datas[i:i + 2] for i in range(0, 8, 2)])
        s.eq("every batch finished", seen2.datas("end"), [datas[i:i + 2] for i in range(0, 8, 2)])
    finally:
        if d.proc:
            d.stop(cleanup=False)
        if d2:
            d2.stop(cleanup=False)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_disable_during_batch(s, d, k, c):
    """Disabling while a batch is in flight: its result is applied; enabling resumes right after
    it (nothing skipped, nothing twice)."""
    make_stream(k, "dd", 1)
    make_stream(k, "dd-seen", 1)
    make_function(c, "dd-fn", "dd-seen", busy_ms=300)
    datas = ["d%d" % i for i in range(6)]
    for x in datas:
        put(k, "dd", x)
    uuid = c.create_event_source_mapping(EventSourceArn=st.stream_arn("dd"), FunctionName="dd-fn",
                                         StartingPosition="TRIM_HORIZON", BatchSize=2)["UUID"]
    seen = Seen(k, "dd-seen")
    s.check("enabled", wait_state(c, uuid, "Enabled"))
    s.check("first batch started", wait_for(lambda: len(seen.starts()) >= 1, 10.0))
    c.update_event_source_mapping(UUID=uuid, Enabled=False)
    s.check("disabled", wait_state(c, uuid, "Disabled"))
    time.sleep(0.5)
    n_disabled = len(seen.starts())
    s.check("consumption stopped", n_disabled < 3, seen.datas())
    s.eq("in-flight batch finished", seen.datas("end"), seen.datas())
    c.update_event_source_mapping(UUID=uuid, Enabled=True)
    s.check("rest handled after enable", seen.wait_records(6, 10.0))
    time.sleep(0.2)
    s.eq("each batch once, in order", seen.datas(), [datas[i:i + 2] for i in range(0, 6, 2)])


def test_parallelization_factor(s, d, k, c):
    """ParallelizationFactor 3 on one shard: per-key order and exactly-once delivery."""
    make_stream(k, "pz", 1)
    make_stream(k, "pz-seen", 1)
    make_function(c, "pz-fn", "pz-seen", busy_ms=20)
    keys = ["k%d" % i for i in range(6)]
    c.create_event_source_mapping(EventSourceArn=st.stream_arn("pz"), FunctionName="pz-fn",
                                  StartingPosition="TRIM_HORIZON", BatchSize=3,
                                  ParallelizationFactor=3)
    seen = Seen(k, "pz-seen")
    want = {key: [] for key in keys}
    for i in range(5):
        for key in keys:
            put(k, "pz", "%s-%d" % (key, i), key=key)
            want[key].append("%s-%d" % (key, i))
    s.check("all handled", seen.wait_records(30, 15.0))
    time.sleep(0.2)
    batches = seen.ends()
    for key in keys:
        s.eq("order of %s" % key, [r[0] for b in batches for r in b if r[1] == key], want[key])
    s.eq("nothing twice", sum(len(b) for b in seen.starts()), 30)


def test_stream_recreated(s):
    """A stream deleted and created again under the same name (same ARN): the mapping's old
    checkpoints belong to the former stream; the new one is consumed from its trim horizon,
    live and after a restart (regression: the consumer used to retry the old sequence number
    forever, "did not come from this stream")."""
    d = st.Daemon(args=["--transition-ms", "0"]).start()
    data_dir = d.data_dir
    d2 = None
    try:
        k, c = st.boto3_client(d.endpoint), lam(d.endpoint)
        make_stream(k, "sr", 1)
        make_stream(k, "sr-seen", 1)
        make_function(c, "sr-fn", "sr-seen")
        uuid = c.create_event_source_mapping(EventSourceArn=st.stream_arn("sr"),
                                             FunctionName="sr-fn",
                                             StartingPosition="TRIM_HORIZON")["UUID"]
        seen = Seen(k, "sr-seen")

        def recreate(tag):
            k.delete_stream(StreamName="sr")
            wait_for(lambda: "sr" not in k.list_streams()["StreamNames"], 10.0)
            make_stream(k, "sr", 1)
            for i in range(3):
                put(k, "sr", "%s%d" % (tag, i))
        for i in range(3):
            put(k, "sr", "a%d" % i)
        s.check("first incarnation consumed", seen.wait_records(3))
        recreate("b")
        s.check("second incarnation consumed", seen.wait_records(6, 10.0),
                seen.datas())
        c.update_event_source_mapping(UUID=uuid, Enabled=False)
        s.check("disabled", wait_state(c, uuid, "Disabled"))
        recreate("c")
        s.eq("clean stop", d.stop(cleanup=False), 0)
        d2 = st.Daemon(args=["--transition-ms", "0"], data_dir=data_dir).start()
        k2, c2 = st.boto3_client(d2.endpoint), lam(d2.endpoint)
        c2.update_event_source_mapping(UUID=uuid, Enabled=True)
        seen2 = Seen(k2, "sr-seen")
        s.check("third incarnation consumed after a restart", seen2.wait_records(9, 10.0),
                seen2.datas())
        time.sleep(0.2)
        s.eq("every record of every incarnation once, in order",
             [x for b in seen2.datas() for x in b],
             ["%s%d" % (tag, i) for tag in "abc" for i in range(3)])
    finally:
        if d.proc:
            d.stop(cleanup=False)
        if d2:
            d2.stop(cleanup=False)
        shutil.rmtree(data_dir, ignore_errors=True)


# ---- split and merge during consumption -------------------------------------------------------

def test_split_merge_order(s, d, k, c):
    make_stream(k, "rs", 1)
    make_stream(k, "rs-seen", 1)
    make_function(c, "rs-fn", "rs-seen", busy_ms=60)
    c.create_event_source_mapping(EventSourceArn=st.stream_arn("rs"), FunctionName="rs-fn",
                                  StartingPosition="TRIM_HORIZON", BatchSize=3)
    keys = ["k%d" % i for i in range(8)]
    put_order = {key: [] for key in keys}
    n = 0

    def phase(tag, per_key):
        nonlocal n
        for i in range(per_key):
            for key in keys:
                data = "%s-%s-%d" % (tag, key, i)
                put(k, "rs", data, key=key)
                put_order[key].append(data)
                n += 1
    seen = Seen(k, "rs-seen")
    phase("a", 4)
    k.split_shard(StreamName="rs", ShardToSplit="shardId-000000000000",
                  NewStartingHashKey=str(HALF))
    s.check("split: stream ACTIVE again", wait_active(k, "rs"))
    s.check("split happened while the parent was being consumed",
            sum(len(b) for b in seen.ends()) < 32, seen.ends())
    phase("b", 4)
    k.merge_shards(StreamName="rs", ShardToMerge="shardId-000000000001",
                   AdjacentShardToMerge="shardId-000000000002")
    s.check("merge: stream ACTIVE again", wait_active(k, "rs"))
    phase("c", 4)
    s.check("all records handled", seen.wait_records(n, 20.0))
    batches = seen.ends()
    got = {key: [r[0] for b in batches for r in b if r[1] == key] for key in keys}
    for key in keys:
        s.eq("per-key order of %s" % key, got[key], put_order[key])
    shard_seq = [b[0][3] for b in batches]
    s.check("one shard per batch", all(len({r[3] for r in b}) == 1 for b in batches))
    s.eq("shards consumed", sorted(set(shard_seq)),
         ["shardId-%012d" % i for i in range(4)])

    def last(sh):
        return max(i for i, x in enumerate(shard_seq) if x == sh)

    def first(sh):
        return min(i for i, x in enumerate(shard_seq) if x == sh)
    s.check("children of the split start after the parent drained",
            last("shardId-000000000000") < min(first("shardId-000000000001"),
                                               first("shardId-000000000002")), shard_seq)
    s.check("merged child starts after both parents drained",
            max(last("shardId-000000000001"), last("shardId-000000000002")) <
            first("shardId-000000000003"), shard_seq)


# ---- poison record: bisect, retries exhausted, on-failure destination -------------------------

def test_poison_bisect_dlq(s, d, k, c):
    dest = "arn:aws:sqs:us-east-1:000000000000:px-dlq"
    make_stream(k, "px", 1)
    make_stream(k, "px-seen", 1)
    make_function(c, "px-fn", "px-seen", mode="poison")
    datas = ["r0", "r1", "r2", "r3", "poison", "r5", "r6", "r7"]
    seqs = [put(k, "px", x)[1] for x in datas]
    t_put = time.time()
    r = c.create_event_source_mapping(
        EventSourceArn=st.stream_arn("px"), FunctionName="px-fn", StartingPosition="TRIM_HORIZON",
        BatchSize=8, BisectBatchOnFunctionError=True, MaximumRetryAttempts=1,
        DestinationConfig={"OnFailure": {"Destination": dest}})
    uuid = r["UUID"]
    s.eq("destination echoed", r["DestinationConfig"], {"OnFailure": {"Destination": dest}})
    seen = Seen(k, "px-seen")
    s.check("records after the poison handled", wait_for(
        lambda: ["r6", "r7"] in seen.datas("end"), 15.0), seen.datas())
    s.eq("invocation sequence (bisect at ceil(n/2), one retry of the poison)", seen.datas(), [
        datas, datas[:4], datas[4:], datas[4:6], ["poison"], ["poison"], ["r5"], ["r6", "r7"]])
    status, recs = dlq(d, dest)
    s.eq("dlq status", status, 200)
    s.eq("one on-failure record", len(recs) if status == 200 else None, 1)
    if status != 200 or not recs:
        return
    f = recs[0]
    rc, bi = f.get("requestContext", {}), f.get("KinesisBatchInfo", {})
    s.eq("condition", rc.get("condition"), "RetryAttemptsExhausted")
    s.eq("approximateInvokeCount (8, 4, 2, 1, 1-retry)", rc.get("approximateInvokeCount"), 5)
    s.eq("functionArn", rc.get("functionArn"),
         "arn:aws:lambda:us-east-1:000000000000:function:px-fn")
    s.check("requestId is a UUID", UUID_RE.match(rc.get("requestId", "")), rc)
    s.eq("responseContext", f.get("responseContext"),
         {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
    s.eq("version", f.get("version"), "1.0")
    s.check("timestamp shape", re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$",
                                        f.get("timestamp", "")), f.get("timestamp"))
    s.eq("batch info seqs", (bi.get("startSequenceNumber"), bi.get("endSequenceNumber")),
         (seqs[4], seqs[4]))
    s.eq("batch info size/shard/stream", (bi.get("batchSize"), bi.get("shardId"),
                                          bi.get("streamArn")),
         (1, "shardId-000000000000", st.stream_arn("px")))
    first_ts = bi.get("approximateArrivalOfFirstRecord", "")
    s.check("arrival timestamps", first_ts == bi.get("approximateArrivalOfLastRecord") and
            first_ts[:10] == time.strftime("%Y-%m-%d", time.gmtime(t_put)), bi)
    m = metrics(d)
    s.eq("metrics: invocations", metric(m, "sluice_esm_invocations_total", uuid), 8)
    s.eq("metrics: function errors", metric(m, "sluice_esm_function_errors_total", uuid), 5)
    s.eq("metrics: bisects", metric(m, "sluice_esm_bisects_total", uuid), 3)
    s.eq("metrics: retries", metric(m, "sluice_esm_retries_total", uuid), 1)
    s.eq("metrics: discarded", metric(m, "sluice_esm_records_discarded_total", uuid), 1)
    s.eq("metrics: records out", metric(m, "sluice_esm_records_out_total", uuid), 7)
    s.eq("LastProcessingResult", c.get_event_source_mapping(UUID=uuid)["LastProcessingResult"],
         "OK")


# ---- ReportBatchItemFailures ------------------------------------------------------------------

def test_partial_batch_failure(s, d, k, c):
    make_stream(k, "pf", 1)
    make_stream(k, "pf-seen", 1)
    make_function(c, "pf-fn", "pf-seen", mode="partial")
    datas = ["r0", "r1", "bad", "r3", "r4"]
    for x in datas:
        put(k, "pf", x)
    uuid = c.create_event_source_mapping(
        EventSourceArn=st.stream_arn("pf"), FunctionName="pf-fn", StartingPosition="TRIM_HORIZON",
        BatchSize=10, FunctionResponseTypes=["ReportBatchItemFailures"])["UUID"]
    seen = Seen(k, "pf-seen")
    s.check("suffix retried", wait_for(lambda: len(seen.datas("end")) >= 2, 10.0), seen.datas())
    time.sleep(0.3)
    s.eq("batches: whole, then the suffix from the failed item", seen.datas(),
         [datas, datas[2:]])
    m = metrics(d)
    s.eq("metrics: records out", metric(m, "sluice_esm_records_out_total", uuid), 5)
    s.eq("metrics: retries", metric(m, "sluice_esm_retries_total", uuid), 1)
    s.eq("metrics: no function error", metric(m, "sluice_esm_function_errors_total", uuid), 0)


# ---- disable / enable and BatchSize updates ---------------------------------------------------

def test_disable_enable_batch_size(s, d, k, c):
    make_stream(k, "de", 1)
    make_stream(k, "de-seen", 1)
    make_function(c, "de-fn", "de-seen")
    uuid = c.create_event_source_mapping(
        EventSourceArn=st.stream_arn("de"), FunctionName="de-fn", StartingPosition="LATEST",
        BatchSize=10)["UUID"]
    s.check("enabled", wait_state(c, uuid, "Enabled"))
    seen = Seen(k, "de-seen")
    for i in range(3):
        put(k, "de", "a%d" % i)
    s.check("first records handled", seen.wait_records(3))
    r = c.update_event_source_mapping(UUID=uuid, Enabled=False)
    s.eq("disable answers 202", r["ResponseMetadata"]["HTTPStatusCode"], 202)
    s.check("disable state", r["State"] in ("Updating", "Disabling"), r["State"])
    s.check("disabled", wait_state(c, uuid, "Disabled"))
    for i in range(6):
        put(k, "de", "b%d" % i)
    time.sleep(0.5)
    s.eq("nothing delivered while disabled", sum(len(b) for b in seen.datas()), 3)
    r = c.update_event_source_mapping(UUID=uuid, Enabled=True, BatchSize=2)
    s.check("enable state", r["State"] in ("Updating", "Enabling"), r["State"])
    s.check("records after enable", seen.wait_records(9))
    s.check("enabled again", wait_state(c, uuid, "Enabled"))
    time.sleep(0.2)
    s.eq("resumed from the checkpoint with BatchSize 2", seen.datas()[-3:],
         [["b0", "b1"], ["b2", "b3"], ["b4", "b5"]])
    s.eq("every record once, in order", [x for b in seen.datas() for x in b],
         ["a0", "a1", "a2"] + ["b%d" % i for i in range(6)])
    r = c.update_event_source_mapping(UUID=uuid, BatchSize=4)
    s.eq("update answers 202", r["ResponseMetadata"]["HTTPStatusCode"], 202)
    s.check("enabled after the update", wait_state(c, uuid, "Enabled"))
    s.eq("BatchSize updated", c.get_event_source_mapping(UUID=uuid)["BatchSize"], 4)
    before = len(seen.datas())
    k.put_records(StreamName="de", Records=[{"Data": ("c%d" % i).encode(), "PartitionKey": "k"}
                                            for i in range(8)])
    s.check("put_records batch handled", seen.wait_records(17))
    s.eq("BatchSize 4 in effect", seen.datas()[before:],
         [["c0", "c1", "c2", "c3"], ["c4", "c5", "c6", "c7"]])


# ---- two mappings on one stream ---------------------------------------------------------------

def test_two_mappings(s, d, k, c):
    make_stream(k, "tm", 1)
    make_stream(k, "tm-a-seen", 1)
    make_stream(k, "tm-b-seen", 1)
    make_function(c, "tm-a", "tm-a-seen", busy_ms=200)
    make_function(c, "tm-b", "tm-b-seen")
    ua = c.create_event_source_mapping(EventSourceArn=st.stream_arn("tm"), FunctionName="tm-a",
                                       StartingPosition="TRIM_HORIZON", BatchSize=1)["UUID"]
    ub = c.create_event_source_mapping(EventSourceArn=st.stream_arn("tm"), FunctionName="tm-b",
                                       StartingPosition="TRIM_HORIZON", BatchSize=1)["UUID"]
    s.check("two distinct mappings", ua != ub)
    sa, sb = Seen(k, "tm-a-seen"), Seen(k, "tm-b-seen")
    for i in range(5):
        put(k, "tm", "x%d" % i)
    s.check("fast mapping done", sb.wait_records(5))
    s.check("fast mapping does not wait for the slow one",
            sum(len(b) for b in sa.ends()) < 5, sa.datas())
    s.check("slow mapping done", sa.wait_records(5))
    c.update_event_source_mapping(UUID=ua, Enabled=False)
    s.check("a disabled", wait_state(c, ua, "Disabled"))
    for i in range(5, 10):
        put(k, "tm", "x%d" % i)
    s.check("b goes on while a is disabled", sb.wait_records(10))
    s.eq("a stays where it was", sum(len(b) for b in sa.datas()), 5)
    c.update_event_source_mapping(UUID=ua, Enabled=True)
    s.check("a catches up", sa.wait_records(10))
    want = [["x%d" % i] for i in range(10)]
    s.eq("a saw every record once, in order", sa.datas(), want)
    s.eq("b saw every record once, in order", sb.datas(), want)
    m = metrics(d)
    s.eq("metrics per mapping (a)", metric(m, "sluice_esm_records_out_total", ua), 10)
    s.eq("metrics per mapping (b)", metric(m, "sluice_esm_records_out_total", ub), 10)


# ---- the AWS CLI control plane ----------------------------------------------------------------

def test_cli_control_plane(s, d, k, c):
    make_stream(k, "cli", 1)
    make_stream(k, "cli-seen", 1)
    make_function(c, "cli-fn", "cli-seen")
    arn = st.stream_arn("cli")
    rc, out, err = aws(d, "lambda", "create-event-source-mapping", "--function-name", "cli-fn",
                       "--event-source-arn", arn, "--starting-position", "LATEST",
                       "--batch-size", "7", "--maximum-retry-attempts", "3")
    s.eq("cli create rc", rc, 0)
    if rc:
        print(err)
        return
    m = json.loads(out)
    uuid = m["UUID"]
    s.check("UUID shape", UUID_RE.match(uuid), uuid)
    # aws-cli 2.9's model predates EventSourceMappingArn (it drops the member): read it raw
    status, _, body = st.request(d.port, "GET", "/2015-03-31/event-source-mappings/" + uuid)
    s.eq("mapping ARN", (status, json.loads(body).get("EventSourceMappingArn")),
         (200, "arn:aws:lambda:us-east-1:000000000000:event-source-mapping:" + uuid))
    s.eq("create state", m["State"], "Creating")
    s.eq("create fields", (m["BatchSize"], m["MaximumRetryAttempts"], m["StartingPosition"],
                           m["EventSourceArn"], m["FunctionArn"]),
         (7, 3, "LATEST", arn, "arn:aws:lambda:us-east-1:000000000000:function:cli-fn"))
    s.check("becomes Enabled", wait_state(c, uuid, "Enabled"))
    rc, out, _ = aws(d, "lambda", "get-event-source-mapping", "--uuid", uuid)
    s.eq("cli get", (rc, json.loads(out)["State"] if rc == 0 else None), (0, "Enabled"))
    rc, out, _ = aws(d, "lambda", "list-event-source-mappings", "--function-name", "cli-fn")
    s.eq("cli list", [x["UUID"] for x in json.loads(out)["EventSourceMappings"]]
         if rc == 0 else rc, [uuid])
    rc, out, _ = aws(d, "lambda", "list-event-source-mappings", "--event-source-arn", arn)
    s.eq("cli list by stream", len(json.loads(out)["EventSourceMappings"]) if rc == 0 else rc, 1)
    rc, out, _ = aws(d, "lambda", "update-event-source-mapping", "--uuid", uuid,
                     "--batch-size", "9", "--no-enabled")
    s.eq("cli update rc", rc, 0)
    if rc == 0:
        s.check("update state", json.loads(out)["State"] in ("Updating", "Disabling"), out)
    s.check("becomes Disabled", wait_state(c, uuid, "Disabled"))
    g = c.get_event_source_mapping(UUID=uuid)
    s.eq("updated values", (g["BatchSize"], g["StateTransitionReason"]), (9, "User action"))
    # 409: the same function and stream again (message cites the existing mapping)
    rc, out, err = aws(d, "lambda", "create-event-source-mapping", "--function-name", "cli-fn",
                       "--event-source-arn", arn, "--starting-position", "LATEST")
    s.check("cli duplicate", rc != 0 and "ResourceConflictException" in err and uuid in err, err)
    # 404: unknown stream, unknown function
    rc, out, err = aws(d, "lambda", "create-event-source-mapping", "--function-name", "cli-fn",
                       "--event-source-arn", st.stream_arn("nope"),
                       "--starting-position", "LATEST")
    s.check("cli unknown stream", rc != 0 and "ResourceNotFoundException" in err, err)
    rc, out, err = aws(d, "lambda", "create-event-source-mapping", "--function-name", "nofn",
                       "--event-source-arn", arn, "--starting-position", "LATEST")
    s.check("cli unknown function", rc != 0 and "ResourceNotFoundException" in err, err)
    # the same through boto3, for the HTTP statuses
    from botocore.exceptions import ClientError
    for label, kw, code, status in (
            ("duplicate", {"FunctionName": "cli-fn", "EventSourceArn": arn}, "ResourceConflict"
             "Exception", 409),
            ("unknown stream", {"FunctionName": "cli-fn",
                                "EventSourceArn": st.stream_arn("nope")},
             "ResourceNotFoundException", 404),
            ("unknown function", {"FunctionName": "nofn", "EventSourceArn": arn},
             "ResourceNotFoundException", 404)):
        try:
            c.create_event_source_mapping(StartingPosition="LATEST", **kw)
            s.check("boto3 %s" % label, False, "no error")
        except ClientError as e:
            s.eq("boto3 %s" % label, (e.response["Error"]["Code"],
                                      e.response["ResponseMetadata"]["HTTPStatusCode"]),
                 (code, status))
    st.expect_client_error(s, "get unknown uuid", lambda: c.get_event_source_mapping(
        UUID="00000000-0000-0000-0000-000000000000"), "ResourceNotFoundException")
    rc, out, _ = aws(d, "lambda", "delete-event-source-mapping", "--uuid", uuid)
    s.eq("cli delete", (rc, json.loads(out)["State"] if rc == 0 else None), (0, "Deleting"))
    s.check("gone after delete", wait_for(lambda: aws(
        d, "lambda", "get-event-source-mapping", "--uuid", uuid)[0] != 0, 10.0, 0.2))
    rc, out, err = aws(d, "lambda", "get-event-source-mapping", "--uuid", uuid)
    s.check("cli get deleted: 404", "ResourceNotFoundException" in err, err)
    r = c.create_event_source_mapping(FunctionName="cli-fn", EventSourceArn=arn,
                                      StartingPosition="TRIM_HORIZON")
    s.eq("boto3 create 202", (r["ResponseMetadata"]["HTTPStatusCode"], r["State"]),
         (202, "Creating"))
    s.check("recreated mapping enabled", wait_state(c, r["UUID"], "Enabled"))
    r2 = c.delete_event_source_mapping(UUID=r["UUID"])
    s.eq("boto3 delete 202", (r2["ResponseMetadata"]["HTTPStatusCode"], r2["State"]),
         (202, "Deleting"))


# ---- metrics ----------------------------------------------------------------------------------

def test_metrics(s, d, k, c):
    make_stream(k, "mt", 2)
    make_stream(k, "mt-seen", 1)
    make_function(c, "mt-fn", "mt-seen")
    uuid = c.create_event_source_mapping(EventSourceArn=st.stream_arn("mt"), FunctionName="mt-fn",
                                         StartingPosition="TRIM_HORIZON", BatchSize=5)["UUID"]
    seen = Seen(k, "mt-seen")
    for i in range(10):
        put(k, "mt", "m%d" % i, ehk=0)
    for i in range(4):
        put(k, "mt", "n%d" % i, ehk=HALF)
    s.check("handled", seen.wait_records(14))
    text = metrics(d)
    invocations = len(seen.ends())
    s.check("mapping info line", ('sluice_esm_mapping_info{uuid="%s",function="mt-fn",'
                                  'stream="mt",state="Enabled"} 1' % uuid) in text)
    s.eq("invocations", metric(text, "sluice_esm_invocations_total", uuid), invocations)
    s.eq("records in", metric(text, "sluice_esm_records_in_total", uuid), 14)
    s.eq("records out", metric(text, "sluice_esm_records_out_total", uuid), 14)
    s.eq("records out shard 0", metric(text, "sluice_esm_records_out_total", uuid,
                                       "shardId-000000000000"), 10)
    s.eq("records out shard 1", metric(text, "sluice_esm_records_out_total", uuid,
                                       "shardId-000000000001"), 4)
    age = metric(text, "sluice_esm_iterator_age_ms", uuid, "shardId-000000000000")
    s.check("iterator age present and sane", age is not None and 0 <= age < 60000, age)
    s.check("function invocations counted",
            'sluice_function_invocations_total{function="mt-fn"} %d' % invocations in text)
    s.check("last result label", ('sluice_esm_last_result_info{uuid="%s",function="mt-fn",'
                                  'result="OK"} 1' % uuid) in text)


def main():
    s = st.Suite("esm-daemon")
    t0 = time.monotonic()
    s.run(test_restart_after_sigkill, s)
    s.run(test_clean_stop_mid_batch, s)
    s.run(test_stream_recreated, s)
    d = st.Daemon(args=["--transition-ms", "100"]).start()
    try:
        k, c = st.boto3_client(d.endpoint), lam(d.endpoint)
        for fn in (test_split_merge_order, test_poison_bisect_dlq, test_partial_batch_failure,
                   test_disable_enable_batch_size, test_disable_during_batch,
                   test_parallelization_factor, test_two_mappings, test_metrics):
            s.run(fn, s, d, k, c)
        s.run(test_cli_control_plane, s, d, k, c)
        if s.failed:
            print(d.log_tail(60))
    finally:
        d.stop()
    print("total %.1f s" % (time.monotonic() - t0))
    s.finish()


if __name__ == "__main__":
    main()
