"""Security checks of issue 8, against the real binaries:

- the control socket refuses another uid: a dedicated system user (created
  with useradd when missing; these tests run as root) runs wardenctl against
  a socket it can reach (control_mode 0666), every command is refused with a
  clear "permission denied", nothing happens, and warden keeps serving;
- the health API's mutating endpoints refuse a missing or wrong bearer
  token with 401 and do nothing;
- secrets set in config (a Slack webhook URL with a token, a webhook URL with
  a token written straight into the config, an Authorization header value, an
  SMTP password, the health API token) never appear in any worker's
  `wardenctl logs`, warden's own stdout/stderr, `wardenctl status --json`,
  the worker command replies, /healthz, /metrics, the JSON API, the events or
  the audit log, after deliveries that succeeded and ones that failed.

The position monitor has no broker key (docs/BROKER.md: the API takes none),
so there is none to check here.
"""
import http.client
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import time

import pytest

from smtp_sink import SmtpSink
from sink import Sink
from sp import PROTO_REQ, SPSocket
from wardenlib import BIN_DIR, WARDENCTL, clean_env, worker

import msgpack

HEALTH = BIN_DIR / "warden-health"
NOTIFIER = BIN_DIR / "warden-notifier"
REDIS = shutil.which("redis-server")
OTHER_USER = "warden-sectest"
T_ALERT, T_ALERT_REPLY = 32, 33

# Distinct, greppable secret values: each appears nowhere else.
SLACK_TOKEN = "T0SECSLACK/B0SECSLACK/slackSECRETtok3n"
HOOK_TOKEN = "hookSECRETtok3nInConfig"
HEADER_SECRET = "hdrSECRETbearerValue"
SMTP_PASSWORD = "smtpSECRETpassw0rd"
API_TOKEN = "apiSECRETt0kenHealth"
SECRETS = [SLACK_TOKEN, "slackSECRETtok3n", HOOK_TOKEN, HEADER_SECRET, SMTP_PASSWORD, API_TOKEN]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_req(port, method, path, headers=None, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        c.close()


def wait_http(port, path, want, timeout=15):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = http_req(port, "GET", path, timeout=2)
            if last[0] == want:
                return last
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    raise AssertionError("%s never answered %s; last: %r" % (path, want, last))


def ensure_user(name):
    """A system user without a home or a shell, created when missing."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a user and run commands as it")
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    r = subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        name], capture_output=True, text=True)
    # A parallel test may have created it between the look-up and here.
    if r.returncode != 0 and "already exists" not in r.stderr:
        raise AssertionError("useradd %s failed: %s" % (name, r.stderr))
    return pwd.getpwnam(name).pw_uid


def ctl_as(uid, sock, *args):
    """wardenctl as uid (setpriv, no supplementary groups, no new privileges)."""
    argv = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % pwd.getpwuid(uid).pw_gid,
            "--clear-groups", "--no-new-privs", str(WARDENCTL), "-s", str(sock)]
    argv += [str(a) for a in args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=clean_env(),
                          stdin=subprocess.DEVNULL)


def audit_text(warden):
    p = warden.run_dir / "audit.log"
    return p.read_text(errors="replace") if p.exists() else ""


# ---- the control socket and another uid ----

def test_control_socket_refuses_another_uid(warden):
    uid = ensure_user(OTHER_USER)
    assert uid != os.getuid()
    # control_mode 0666 and an open run_dir: the file system lets the other
    # user connect, so only warden's own peer-uid check stands in the way.
    warden.start({"worker:a": worker()}, supervisor={"control_mode": "0666"})
    os.chmod(warden.run_dir.parent, 0o755)
    os.chmod(warden.run_dir, 0o755)
    assert stat.S_IMODE(os.stat(warden.control_sock).st_mode) == 0o666
    pid_before = warden.status("a")["pid"]
    errors_before = warden.sup()["ctl_errors"]
    audit_before = audit_text(warden)
    attempts = [["ping"], ["status"], ["stop", "a"], ["restart", "all"],
                ["signal", "a", "KILL"], ["reset", "a", "--reason", "intruder"], ["reload"],
                ["logs", "a"], ["call", "a", "breakers"]]
    for cmd in attempts:
        r = ctl_as(uid, warden.control_sock, *cmd)
        assert r.returncode != 0, (cmd, r)
        assert "permission denied" in r.stderr and str(uid) in r.stderr, (cmd, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (cmd, r.stderr)
        assert r.stdout == "", (cmd, r.stdout)
    # Nothing happened: same process, still wanted up, no audit record; every
    # refusal counted; and warden still serves its own user.
    time.sleep(0.3)
    a = warden.status("a")
    assert a["state"] == "RUNNING" and a["desired"] == "up" and a["pid"] == pid_before, a
    assert warden.sup()["ctl_errors"] >= errors_before + len(attempts)
    assert audit_text(warden) == audit_before
    assert warden.alive()
    assert warden.ctl("ping", json=False).rc == 0
    warden.stop()


# ---- the health API's bearer token ----

def test_health_mutations_refuse_missing_or_wrong_token(warden, tmp_path):
    port = free_port()
    tok = tmp_path / "api.token"
    tok.write_text(API_TOKEN + "\n")
    os.chmod(tok, 0o600)
    warden.start({"worker:a": worker("--breaker", "redis"),
                  "worker:health": worker(command=str(HEALTH), required="no"),
                  "health": {"listen": "127.0.0.1:%d" % port, "snapshot_ttl": "100ms",
                             "api_token_file": str(tok)}})
    wait_http(port, "/readyz", 200)
    pid_before = warden.status("a")["pid"]
    restarts_before = warden.status("a")["restarts"]
    wrong = [None, "", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + API_TOKEN[:-1],
             "Bearer " + API_TOKEN + "x", "Bearer " + API_TOKEN.upper(), "Basic " + API_TOKEN,
             API_TOKEN, "bearer-" + API_TOKEN]
    paths = ["/api/workers/a/restart", "/api/workers/a/restart?reason=x",
             "/api/circuit-breakers/a/redis/reset?reason=x&override"]
    for path in paths:
        for auth in wrong:
            headers = {} if auth is None else {"Authorization": auth}
            st, hdrs, body = http_req(port, "POST", path, headers)
            assert st == 401, (path, auth, st, body)
            assert "Bearer" in hdrs.get("WWW-Authenticate", ""), (path, auth, hdrs)
            assert json.loads(body)["status"] == 401, body
            assert API_TOKEN not in body
    # None of them did anything.
    time.sleep(0.3)
    a = warden.status("a")
    assert a["pid"] == pid_before and a["restarts"] == restarts_before, a
    assert "restart" not in audit_text(warden)
    # The right token does (the check is not simply "always 401").
    st, _, body = http_req(port, "POST", "/api/workers/a/restart?reason=sectest",
                           {"Authorization": "Bearer " + API_TOKEN})
    assert st == 200, (st, body)
    warden.wait_new_pid("a", pid_before, 10)
    assert "sectest" in audit_text(warden)
    warden.stop()


# ---- secrets never shown ----

class PrivateRedis:
    def __init__(self, tmp):
        self.port = free_port()
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(tmp)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def redis(tmp_path):
    if not REDIS:
        pytest.skip("redis-server not installed")
    r = PrivateRedis(tmp_path)
    yield r
    r.stop()


def send_alert(url, i, **kw):
    a = {"id": "sec-%d" % i, "source": "sectest", "severity": "critical",
         "title": "position AAPL exited %d" % i, "text": "stop loss hit",
         "time": time.time_ns(), "labels": {"team": "risk"}, "dedup_key": "sec-%d" % i}
    a.update(kw)
    raw = msgpack.packb([1, T_ALERT, "producer", i + 1, time.time_ns(), a], use_bin_type=True)
    s = SPSocket(url, PROTO_REQ, timeout=5.0)
    try:
        env = msgpack.unpackb(s.request(raw, timeout=5.0), raw=False)
    finally:
        s.close()
    assert env[1] == T_ALERT_REPLY, env
    return env[5]


def test_secrets_never_in_logs_status_metrics_or_audit(warden, redis, tmp_path):
    port = free_port()
    sink = Sink().start()
    smtp = SmtpSink().start()
    try:
        _secrets_run(warden, redis, tmp_path, port, sink, smtp)
    finally:
        smtp.stop()
        sink.stop()


def _secrets_run(warden, redis, tmp_path, port, sink, smtp):
    slack_path = "/services/" + SLACK_TOKEN
    hook_path = "/hook/" + HOOK_TOKEN
    fail_path = "/fail/" + HOOK_TOKEN + "/x"
    sink.set(slack_path, "ok")
    sink.set(hook_path, "fail", status=500, times=2)  # retried, then delivered
    sink.set(fail_path, "status", status=404)         # dead letter at once
    slack_file = tmp_path / "slack.url"
    slack_file.write_text(sink.url(slack_path) + "\n")
    hdr_file = tmp_path / "hdr.secret"
    hdr_file.write_text("Bearer " + HEADER_SECRET + "\n")
    pw_file = tmp_path / "smtp.pw"
    pw_file.write_text(SMTP_PASSWORD + "\n")
    tok = tmp_path / "api.token"
    tok.write_text(API_TOKEN + "\n")
    for f in (slack_file, hdr_file, pw_file, tok):
        os.chmod(f, 0o600)
    sections = {
        "worker:a": worker(),
        "worker:notifier": worker(command=str(NOTIFIER)),
        "worker:health": worker(command=str(HEALTH), required="no"),
        "notifier": {"redis_url": redis.url, "retry_base": "100ms", "retry_cap": "500ms",
                     "dedup_window": "1s", "storm_threshold": "0"},
        "channel:slack": {"type": "slack", "url_file": str(slack_file), "rate": "100",
                          "severities": "critical"},
        # A token written straight into the config file, as an operator may.
        "channel:hook": {"type": "webhook", "url": sink.url(hook_path),
                         "headers": "Authorization=file:%s" % hdr_file},
        "channel:deadhook": {"type": "webhook", "url": sink.url(fail_path)},
        "channel:mail": {"type": "email", "url": "smtp://127.0.0.1:%d" % smtp.port,
                         "from": "warden@example.org", "to": "oncall@example.org",
                         "username": "warden", "password_file": str(pw_file)},
        "health": {"listen": "127.0.0.1:%d" % port, "snapshot_ttl": "100ms",
                   "api_token_file": str(tok)},
    }
    warden.start(sections, log_level="debug")
    wait_http(port, "/readyz", 200)
    alerts_url = "ipc://%s/alerts.sock" % warden.run_dir
    deadline = time.monotonic() + 15
    while True:
        try:
            r = send_alert(alerts_url, 0)
            if r["status"] == 0:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "notifier never acked\n" + warden.diag()
        time.sleep(0.1)
    for i in range(1, 4):
        assert send_alert(alerts_url, i)["status"] == 0
    # Every channel was used: slack and the hook delivered (the hook after
    # two 500s), the dead hook 404'd, the mail went out.
    warden.wait_until(lambda: len(sink.ids(slack_path)) == 4, 15, "slack deliveries")
    warden.wait_until(lambda: len(sink.ids(hook_path)) == 4, 15, "webhook deliveries")
    warden.wait_until(lambda: len(sink.requests(fail_path)) >= 4, 15, "404s")
    warden.wait_until(lambda: len(smtp.messages) >= 1, 15, "a mail")
    # The secrets did reach the places they are for (the test sees real use).
    hook_reqs = sink.requests(hook_path)
    assert hook_reqs[0][4].get("Authorization") == "Bearer " + HEADER_SECRET
    # A mutation through the health API with the token, so the audit log
    # holds a record made by an authenticated call.
    st, _, body = http_req(port, "POST", "/api/workers/a/restart?reason=sectest",
                           {"Authorization": "Bearer " + API_TOKEN})
    assert st == 200, (st, body)
    assert http_req(port, "POST", "/api/workers/a/restart",
                    {"Authorization": "Bearer nope"})[0] == 401
    warden.wait_all_running(15)
    warden.wait_until(lambda: "sectest" in audit_text(warden), 10, "audit record")
    time.sleep(0.5)  # let the last log lines reach the rings

    seen = {}
    for name in ("a", "notifier", "health"):
        seen["logs " + name] = warden.ctl("logs", name, "-n", 10000, json=False).out
        seen["logs --json " + name] = json.dumps(warden.ctl("logs", name, "-n", 10000))
    seen["status --json"] = json.dumps(warden.ctl("status"))
    seen["status"] = warden.ctl("status", json=False).out
    seen["events"] = json.dumps(warden.events())
    seen["call notifier breakers"] = json.dumps(warden.ctl("call", "notifier", "breakers"))
    seen["dlq list"] = json.dumps(warden.ctl("call", "notifier", "dlq list"))
    seen["audit.log"] = audit_text(warden)
    for path in ("/healthz", "/metrics", "/api/workers", "/api/circuit-breakers",
                 "/api/circuit-breakers/history", "/", "/readyz?verbose"):
        seen["GET " + path] = http_req(port, "GET", path)[2]
    dead = json.loads(seen["dlq list"])
    assert "deadhook" in seen["dlq list"] or dead, dead  # the dead letter is there to look at
    assert "warden_notifier" in seen["GET /metrics"]
    assert "sectest" in seen["audit.log"]
    warden.stop()
    seen["warden stdout"] = warden.stdout_path.read_text(errors="replace")
    seen["warden stderr"] = warden.stderr_text()
    # Each place was non-trivially filled, then none holds a secret.
    assert "notifier" in seen["warden stdout"]
    leaks = ["%r in %s" % (s, where) for where, text in seen.items() for s in SECRETS
             if s in text]
    assert not leaks, "secrets leaked: " + "; ".join(leaks)
