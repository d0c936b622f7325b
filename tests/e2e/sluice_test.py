"""Shared helpers for sluice's end-to-end tests.

Each test program starts its own daemon on a free loopback port with a temporary data directory
(`$SLUICE_BIN serve --listen 127.0.0.1:PORT --data-dir TMP`, SLUICE_BIN defaulting to
build/sluice), waits until GET /health answers, drives it with real clients, and stops it with
SIGTERM. `Suite` counts checks and ends the program with the line "N passed, M failed" (exit
status 1 when anything failed), as tests/run_tests.sh expects.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLUICE_BIN = os.environ.get("SLUICE_BIN", os.path.join(ROOT, "build", "sluice"))
ACCOUNT = "000000000000"
REGION = "us-east-1"


def free_port():
    """An unused loopback TCP port (bound once by us, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    """A sluice daemon on 127.0.0.1:<free port> with a throw-away data directory."""

    def __init__(self, args=(), data_dir=None, start_timeout=15.0):
        self.args = list(args)
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="sluice-e2e-")
        self.port = None
        self.proc = None
        self.log_path = os.path.join(tempfile.gettempdir(),
                                     "sluice-e2e-%d-%d.log" % (os.getpid(), id(self)))
        self.start_timeout = start_timeout
        self.startup_ms = None

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        last_err = None
        for _ in range(3):  # the port may be taken between free_port() and bind()
            self.port = free_port()
            cmd = [SLUICE_BIN, "serve", "--listen", "127.0.0.1:%d" % self.port,
                   "--data-dir", self.data_dir] + self.args
            log = open(self.log_path, "ab")
            t0 = time.monotonic()
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            log.close()
            deadline = t0 + self.start_timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_err = "daemon exited with %s" % self.proc.returncode
                    break
                try:
                    status, _, _ = request(self.port, "GET", "/health", timeout=1.0)
                    if status == 200:
                        self.startup_ms = (time.monotonic() - t0) * 1000.0
                        return self
                except OSError as e:
                    last_err = str(e)
                time.sleep(0.005)
            else:
                last_err = "no /health answer within %.0f s" % self.start_timeout
            self._kill()
        raise RuntimeError("cannot start %s: %s\n%s" % (SLUICE_BIN, last_err, self.log_tail()))

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def _kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, cleanup=True):
        """SIGTERM, wait up to 15 s (then SIGKILL). Returns the exit status. cleanup=False keeps
        the data directory (for a restart on it); the log file always goes."""
        rc = None
        if self.proc:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            rc = self.proc.returncode
            self.proc = None
        if cleanup and self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        try:
            os.unlink(self.log_path)
        except OSError:
            pass
        return rc

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def amz_date():
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def auth_headers(service="kinesis"):
    """A syntactically valid SigV4 Authorization header (signatures are not verified unless the
    daemon runs with --auth)."""
    d = amz_date()
    return {
        "X-Amz-Date": d,
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/%s/%s/%s/aws4_request, "
                         "SignedHeaders=content-type;host;x-amz-date;x-amz-target, "
                         "Signature=%s" % (d[:8], REGION, service, "0" * 64),
    }


def request(port, method, path, headers=None, body=b"", timeout=10.0, conn=None):
    """One HTTP/1.1 request; returns (status, {lower-case header: value}, body bytes)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


def kinesis_request(port, op, payload, content_type="application/x-amz-json-1.1", auth=True,
                    conn=None, raw=None):
    """POST / with X-Amz-Target Kinesis_20131202.<op>; payload is JSON-encoded unless raw bytes
    are given. Returns (status, headers, body bytes)."""
    headers = {"X-Amz-Target": "Kinesis_20131202." + op, "Content-Type": content_type}
    if auth:
        headers.update(auth_headers())
    body = raw if raw is not None else json.dumps(payload).encode()
    return request(port, "POST", "/", headers, body, conn=conn)


def boto3_client(endpoint, validate=True, retries=0):
    import boto3
    from botocore.config import Config
    cfg = Config(retries={"max_attempts": retries}, parameter_validation=validate,
                 connect_timeout=5, read_timeout=30)
    return boto3.client("kinesis", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="x", aws_secret_access_key="x", config=cfg)


def stream_arn(name):
    return "arn:aws:kinesis:%s:%s:stream/%s" % (REGION, ACCOUNT, name)


class Suite:
    """Counts checks; `run` executes a test function, `check` records one assertion."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, label, cond, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s %s" % (label, detail), flush=True)
        return cond

    def eq(self, label, got, want):
        return self.check(label, got == want, "got %r want %r" % (got, want))

    def run(self, fn, *args):
        t0 = time.monotonic()
        before = self.failed
        try:
            fn(*args)
        except Exception:  # a crashing test is one failure, the suite goes on
            self.failed += 1
            print("FAIL %s raised:\n%s" % (fn.__name__, traceback.format_exc()), flush=True)
        state = "ok" if self.failed == before else "FAILED"
        print("%-50s %s (%.2fs)" % (fn.__name__, state, time.monotonic() - t0), flush=True)

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        sys.exit(1 if self.failed else 0)


def expect_client_error(suite, label, fn, code, message=None, contains=None):
    """Calls fn(); checks it raised a botocore ClientError with this code (and message)."""
    from botocore.exceptions import ClientError
    try:
        fn()
    except ClientError as e:
        err = e.response.get("Error", {})
        ok = suite.eq(label + " code", err.get("Code"), code)
        if message is not None:
            ok = suite.eq(label + " message", err.get("Message"), message) and ok
        if contains is not None:
            ok = suite.check(label + " message", contains in (err.get("Message") or ""),
                             "%r not in %r" % (contains, err.get("Message"))) and ok
        return e
    suite.check(label, False, "no error raised (want %s)" % code)
    return None
