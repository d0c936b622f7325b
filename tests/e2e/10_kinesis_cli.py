#!/usr/bin/python3
"""aws-cli (/usr/bin/aws) against a real sluice daemon: every Kinesis operation the CLI offers,
including `aws kinesis wait stream-exists` / `stream-not-exists`, and an error's exit status."""
import base64
import json
import os
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sluice_test import ACCOUNT, Daemon, Suite, stream_arn  # noqa: E402

AWS = "/usr/bin/aws"
S = Suite("kinesis-cli")
ENDPOINT = [""]


def aws(*args, expect_ok=True):
    """Runs `aws --endpoint-url E kinesis ARGS --output json`; returns (rc, parsed stdout,
    stderr)."""
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": "",
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"})
    cmd = [AWS, "--endpoint-url", ENDPOINT[0], "--output", "json", "kinesis"] + list(args)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    out = None
    if p.stdout.strip():
        try:
            out = json.loads(p.stdout)
        except ValueError:
            out = p.stdout
    if expect_ok:
        S.check("aws kinesis %s exits 0" % args[0], p.returncode == 0,
                "rc=%d stderr=%s" % (p.returncode, p.stderr.strip()[-400:]))
    return p.returncode, out, p.stderr


def test_lifecycle():
    aws("create-stream", "--stream-name", "cli", "--shard-count", "2")
    # The daemon keeps new streams CREATING for --transition-ms; the waiter polls until ACTIVE.
    rc, _, _ = aws("wait", "stream-exists", "--stream-name", "cli")
    S.eq("wait stream-exists", rc, 0)
    _, d, _ = aws("describe-stream", "--stream-name", "cli")
    sd = d["StreamDescription"]
    S.eq("describe status", sd["StreamStatus"], "ACTIVE")
    S.eq("describe shards", len(sd["Shards"]), 2)
    S.eq("describe arn", sd["StreamARN"], stream_arn("cli"))
    S.check("creation timestamp rendered", isinstance(sd["StreamCreationTimestamp"], (str, float)))
    _, s, _ = aws("describe-stream-summary", "--stream-name", "cli")
    S.eq("summary open shards", s["StreamDescriptionSummary"]["OpenShardCount"], 2)
    _, ls, _ = aws("list-streams")
    S.check("list-streams", "cli" in ls["StreamNames"], str(ls))
    _, sh, _ = aws("list-shards", "--stream-name", "cli")
    S.eq("list-shards", [x["ShardId"] for x in sh["Shards"]],
         ["shardId-000000000000", "shardId-000000000001"])
    _, lim, _ = aws("describe-limits")
    S.check("describe-limits", lim["OpenShardCount"] >= 2 and lim["ShardLimit"] > 0, str(lim))


def test_put_get():
    _, r, _ = aws("put-record", "--stream-name", "cli", "--partition-key", "pk",
                  "--data", base64.b64encode(b"\x00\x01hello\xff").decode())
    S.check("put-record", r and r["ShardId"].startswith("shardId-") and
            len(r["SequenceNumber"]) == 56, str(r))
    recs = [{"Data": base64.b64encode(("rec-%d" % i).encode()).decode(),
             "PartitionKey": "pk"} for i in range(10)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(recs, f)
        path = f.name
    try:
        _, pr, _ = aws("put-records", "--stream-name", "cli", "--records", "file://" + path)
    finally:
        os.unlink(path)
    S.eq("put-records failed count", pr["FailedRecordCount"], 0)
    S.eq("put-records same shard (same key)", {x["ShardId"] for x in pr["Records"]},
         {r["ShardId"]})
    _, it, _ = aws("get-shard-iterator", "--stream-name", "cli", "--shard-id", r["ShardId"],
                   "--shard-iterator-type", "TRIM_HORIZON")
    _, got, _ = aws("get-records", "--shard-iterator", it["ShardIterator"])
    data = [base64.b64decode(x["Data"]) for x in got["Records"]]
    S.eq("get-records data", data, [b"\x00\x01hello\xff"] + [("rec-%d" % i).encode()
                                                             for i in range(10)])
    S.check("next iterator", bool(got.get("NextShardIterator")))
    _, it2, _ = aws("get-shard-iterator", "--stream-name", "cli", "--shard-id", r["ShardId"],
                    "--shard-iterator-type", "AFTER_SEQUENCE_NUMBER",
                    "--starting-sequence-number", r["SequenceNumber"])
    _, got2, _ = aws("get-records", "--shard-iterator", it2["ShardIterator"], "--limit", "3")
    S.eq("after sequence number + limit", [base64.b64decode(x["Data"]) for x in got2["Records"]],
         [b"rec-0", b"rec-1", b"rec-2"])


def test_tags_retention():
    aws("add-tags-to-stream", "--stream-name", "cli", "--tags", "env=dev,team=data")
    _, t, _ = aws("list-tags-for-stream", "--stream-name", "cli")
    S.eq("tags", t["Tags"], [{"Key": "env", "Value": "dev"}, {"Key": "team", "Value": "data"}])
    aws("remove-tags-from-stream", "--stream-name", "cli", "--tag-keys", "env")
    _, t, _ = aws("list-tags-for-stream", "--stream-name", "cli")
    S.eq("tag removed", [x["Key"] for x in t["Tags"]], ["team"])
    aws("increase-stream-retention-period", "--stream-name", "cli",
        "--retention-period-hours", "72")
    _, s, _ = aws("describe-stream-summary", "--stream-name", "cli")
    S.eq("retention increased", s["StreamDescriptionSummary"]["RetentionPeriodHours"], 72)
    aws("decrease-stream-retention-period", "--stream-name", "cli",
        "--retention-period-hours", "24")
    _, s, _ = aws("describe-stream-summary", "--stream-name", "cli")
    S.eq("retention decreased", s["StreamDescriptionSummary"]["RetentionPeriodHours"], 24)


def test_resharding():
    aws("split-shard", "--stream-name", "cli", "--shard-to-split", "shardId-000000000000",
        "--new-starting-hash-key", str(2 ** 126))
    aws("wait", "stream-exists", "--stream-name", "cli")
    _, sh, _ = aws("list-shards", "--stream-name", "cli")
    S.eq("split children", [x["ShardId"] for x in sh["Shards"]],
         ["shardId-%012d" % i for i in range(4)])
    aws("merge-shards", "--stream-name", "cli", "--shard-to-merge", "shardId-000000000002",
        "--adjacent-shard-to-merge", "shardId-000000000003")
    aws("wait", "stream-exists", "--stream-name", "cli")
    _, sh, _ = aws("list-shards", "--stream-name", "cli")
    merged = [x for x in sh["Shards"] if x["ShardId"] == "shardId-000000000004"]
    S.check("merge child", merged and merged[0].get("AdjacentParentShardId") ==
            "shardId-000000000003", str(sh))
    _, u, _ = aws("update-shard-count", "--stream-name", "cli", "--target-shard-count", "4",
                  "--scaling-type", "UNIFORM_SCALING")
    S.eq("update-shard-count", (u["CurrentShardCount"], u["TargetShardCount"]), (2, 4))
    aws("wait", "stream-exists", "--stream-name", "cli")
    _, s, _ = aws("describe-stream-summary", "--stream-name", "cli")
    S.eq("4 open shards", s["StreamDescriptionSummary"]["OpenShardCount"], 4)
    aws("update-stream-mode", "--stream-arn", stream_arn("cli"),
        "--stream-mode-details", "StreamMode=ON_DEMAND")
    aws("wait", "stream-exists", "--stream-name", "cli")
    _, s, _ = aws("describe-stream-summary", "--stream-name", "cli")
    S.eq("mode", s["StreamDescriptionSummary"]["StreamModeDetails"]["StreamMode"], "ON_DEMAND")


def test_errors_and_delete():
    rc, _, err = aws("describe-stream", "--stream-name", "missing", expect_ok=False)
    S.check("missing stream exits non-zero", rc != 0)
    S.check("missing stream error text",
            "ResourceNotFoundException" in err and
            "Stream missing under account %s not found." % ACCOUNT in err, err)
    rc, _, err = aws("create-stream", "--stream-name", "cli", "--shard-count", "1",
                     expect_ok=False)
    S.check("duplicate create", rc != 0 and "ResourceInUseException" in err, err)
    aws("delete-stream", "--stream-name", "cli")
    rc, _, _ = aws("wait", "stream-not-exists", "--stream-name", "cli")
    S.eq("wait stream-not-exists", rc, 0)
    _, ls, _ = aws("list-streams")
    S.check("deleted", "cli" not in ls["StreamNames"])


def main():
    if not os.path.exists(AWS):
        print("aws-cli not found at %s" % AWS)
        S.check("aws-cli installed", False)
        S.finish()
    with Daemon(["--transition-ms", "300"]) as d:
        ENDPOINT[0] = d.endpoint
        S.run(test_lifecycle)
        S.run(test_put_get)
        S.run(test_tags_retention)
        S.run(test_resharding)
        S.run(test_errors_and_delete)
        if S.failed:
            print(d.log_tail())
    S.finish()


if __name__ == "__main__":
    main()
