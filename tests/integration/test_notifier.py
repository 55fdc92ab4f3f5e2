"""warden-notifier end to end: the real warden runs the real warden-notifier;
alerts go in over alerts.sock from Python producers (sp.py raw SP client and
python3-msgpack), out to a real HTTP sink (sink.py) and a real SMTP sink
(smtp_sink.py) on loopback. Each test has its own PRIVATE redis-server (some
stop it; the suite's shared one at WARDEN_REDIS_URL is never touched).

Covers the issue's faults: 500 x3 then 200 (delivered once, 3 retries);
429 with Retry-After (nothing sent during the pause); 404 (dead letter with
the reason, replay after the fix); a hanging endpoint (timeouts, the
channel's breaker opens, another channel keeps delivering); kill -9 with
1000 acked, undelivered alerts (all delivered exactly once after the
restart); Redis down (no ack, delivered once Redis is back); malformed
alerts (error naming the field, the notifier keeps serving); plus email
(4xx/5xx classes), supervisor events turned into alerts, dedup, and the
secret URL never showing in logs or status."""
import os
import shutil
import signal
import socket
import subprocess
import time

import msgpack
import pytest

from sink import Sink
from smtp_sink import SmtpSink
from sp import PROTO_REQ, SPSocket
from wardenlib import BIN_DIR, worker

NOTIFIER = BIN_DIR / "warden-notifier"
T_ALERT, T_ALERT_REPLY = 32, 33
WD_EINVAL, WD_EPROTO, WD_ETOOBIG, WD_EUNAVAIL = -1, -4, -5, -16
REDIS = shutil.which("redis-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test only, so it can be stopped and restarted."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = tmp
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([REDIS, "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    @property
    def url(self):
        return "redis://127.0.0.1:%d" % self.port


@pytest.fixture
def redis(tmp_path):
    if not REDIS:
        pytest.skip("redis-server not installed")
    r = PrivateRedis(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def sink():
    s = Sink().start()
    yield s
    s.stop()


def alert(i, prefix="a", **kw):
    a = {"id": "%s-%d" % (prefix, i), "source": "test", "severity": "warning",
         "title": "%s alert %d" % (prefix, i), "text": "something happened", "time": time.time_ns(),
         "labels": {"team": "risk"}, "dedup_key": "%s-%d" % (prefix, i)}
    a.update(kw)
    return a


def pack(body, seq=1, mtype=T_ALERT):
    return msgpack.packb([1, mtype, "producer", seq, time.time_ns(), body], use_bin_type=True)


def reply_of(raw):
    env = msgpack.unpackb(raw, raw=False)
    assert env[0] == 1 and env[1] == T_ALERT_REPLY, env
    return env[5]


def notifier_sections(redis, channels, **notifier):
    secs = {"worker:notifier": worker(command=str(NOTIFIER))}
    n = {"redis_url": redis.url, "retry_base": "100ms", "retry_cap": "1s",
         "dedup_window": "1s", "storm_threshold": "0"}
    n.update(notifier)
    secs["notifier"] = n
    for name, keys in channels.items():
        secs["channel:%s" % name] = keys
    return secs


class Producer:
    def __init__(self, warden):
        self.url = "ipc://%s/alerts.sock" % warden.run_dir
        self.sock = None

    def _conn(self):
        if self.sock is None:
            self.sock = SPSocket(self.url, PROTO_REQ, timeout=5.0)
        return self.sock

    def send(self, body, timeout=5.0):
        """One request; the reply body, or None on no reply."""
        try:
            return reply_of(self._conn().request(pack(body), timeout=timeout))
        except (OSError, socket.timeout):
            self.close()
            return None

    def send_many(self, bodies, timeout=20.0, window=32):
        """Pipelines requests on one connection, window at a time (the
        replies must be read while sending, or both sides block); returns
        {id: reply}."""
        s = self._conn()
        out = {}
        deadline = time.monotonic() + timeout
        for start in range(0, len(bodies), window):
            sent = {}
            for b in bodies[start:start + window]:
                s.next_id = (s.next_id + 1) & 0x7FFFFFFF
                rid = (0x80000000 | s.next_id).to_bytes(4, "big")
                sent[rid] = b["id"]
                s.send_raw(rid + pack(b))
            got = 0
            while got < len(sent) and time.monotonic() < deadline:
                msg = s.recv_raw(timeout=max(0.1, deadline - time.monotonic()))
                if msg[:4] in sent:
                    out[sent[msg[:4]]] = reply_of(msg[4:])
                    got += 1
        return out

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None


def start(warden, redis, channels, **notifier):
    warden.start(notifier_sections(redis, channels, **notifier))
    return start_producer(warden)


def start_producer(warden):
    warden.wait_for(lambda st: st["notifier"]["state"] == "RUNNING", 10)
    p = Producer(warden)
    # Ready once the pending set was loaded: acks come back from then on.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = p.send(alert(0, prefix="warmup", severity="info", labels={"warmup": "1"}))
        if r and r["status"] == 0:
            return p
        time.sleep(0.1)
    raise AssertionError("notifier never acked\n" + warden.diag())


def metric(warden, name):
    st = warden.status()
    return st["notifier"].get("metrics", {}).get(name, 0)


def dlq(warden, *words, **args):
    return warden.ctl("call", "notifier", " ".join(("dlq",) + words),
                      *["%s=%s" % kv for kv in args.items()])


def hook(sink, path, **keys):
    k = {"type": "webhook", "url": sink.url(path), "labels": "team=risk"}
    k.update(keys)
    return k


def test_500_three_times_then_ok(warden, redis, sink):
    sink.set("/w", "fail", status=500, times=3)
    p = start(warden, redis, {"w": hook(sink, "/w")})
    r = p.send(alert(1))
    assert r == {"id": "a-1", "status": 0, "error": ""}
    warden.wait_until(lambda: sink.ids("/w")["a-1"] == 1, 15, "a-1 delivered")
    time.sleep(0.5)
    hits = [h for h in sink.hits("/w") if h[1] == "a-1"]
    assert [h[2] for h in hits] == [500, 500, 500, 200], hits
    assert sink.ids("/w")["a-1"] == 1
    warden.wait_until(lambda: metric(warden, 'warden_notifier_retries_total{channel="w"}') == 3,
                      5, "3 retries counted")
    assert metric(warden, 'warden_notifier_failed_total{channel="w",reason="http_5xx"}') == 3
    assert metric(warden, 'warden_notifier_delivered_total{channel="w"}') >= 1


def test_429_retry_after_pauses_the_channel(warden, redis, sink):
    sink.set("/s", "429", retry_after=2, times=1)
    p = start(warden, redis, {"s": hook(sink, "/s", type="slack", rate="50", burst="5")})
    assert p.send(alert(1))["status"] == 0
    assert p.send(alert(2))["status"] == 0
    warden.wait_until(lambda: sink.ids("/s")["a-1"] == 1 and sink.ids("/s")["a-2"] == 1, 15,
                      "both delivered after the pause")
    hits = sink.hits("/s")
    first_429 = min(t for (t, i, s) in hits if s == 429)
    after = [t for (t, i, s) in hits if t > first_429]
    assert after, hits
    assert min(after) - first_429 >= 1.9, "sent again %.2fs after a Retry-After of 2s" % (
        min(after) - first_429)
    # Metrics reach status with the next heartbeat: wait for it.
    warden.wait_until(lambda: metric(
        warden, 'warden_notifier_failed_total{channel="s",reason="rate_limited"}') == 1, 5,
        "the 429 counted")


def test_404_goes_to_dlq_and_replay_delivers(warden, redis, sink):
    sink.set("/x", "status", status=404)
    p = start(warden, redis, {"x": hook(sink, "/x", max_attempts="5")})
    assert p.send(alert(7))["status"] == 0
    warden.wait_until(lambda: dlq(warden, "list")["count"] == 1, 10, "a dead letter")
    d = dlq(warden, "list")["dead_letters"][0]
    assert d["id"] == "a-7" and d["channels"] == ["x"]
    assert "404" in d["error"] and d["attempts"] == 1, d  # permanent: no retry
    assert len(sink.hits("/x")) == 1
    shown = dlq(warden, "show", id="a-7")
    assert shown["alert"]["title"] == "a alert 7" and shown["alert"]["severity"] == "warning"
    warden.wait_until(lambda: metric(warden, "warden_notifier_dlq_depth") == 1, 5, "dlq gauge")
    # Fix the endpoint, replay: delivered once, and the DLQ is empty.
    sink.set("/x", "ok")
    assert dlq(warden, "replay", id="a-7")["replayed"] == 1
    warden.wait_until(lambda: sink.ids("/x")["a-7"] == 1, 10, "replayed alert delivered")
    assert dlq(warden, "list")["count"] == 0
    r = warden.ctl("call", "notifier", "dlq replay", "id=nope", json=False)
    assert r.rc != 0 and "no such dead letter" in (r.out + r.err)
    # purge and replay-all
    sink.set("/x", "status", status=410)
    assert p.send(alert(8))["status"] == 0
    assert p.send(alert(9))["status"] == 0
    warden.wait_until(lambda: dlq(warden, "list")["count"] == 2, 10, "two dead letters")
    assert dlq(warden, "purge", id="a-8")["purged"] == "a-8"
    sink.set("/x", "ok")
    assert dlq(warden, "replay-all")["replayed"] == 1
    warden.wait_until(lambda: sink.ids("/x")["a-9"] == 1, 10, "a-9 delivered")
    assert sink.ids("/x")["a-8"] == 0


def test_hang_times_out_opens_breaker_other_channels_deliver(warden, redis, sink):
    sink.set("/hang", "hang")
    p = start(warden, redis, {
        "slow": hook(sink, "/hang", timeout="300ms", breaker_failures="3",
                     breaker_cooldown="30s", max_attempts="100"),
        "fast": hook(sink, "/fast")})
    t0 = time.monotonic()
    for i in range(5):
        assert p.send(alert(i))["status"] == 0
    warden.wait_until(lambda: sum(sink.ids("/fast").values()) == 5, 10, "fast channel delivers")
    assert time.monotonic() - t0 < 5

    def slow_open():
        brks = warden.ctl("call", "notifier", "breakers")["breakers"]
        b = [x for x in brks if x["name"] == "channel-slow"]
        return b and b[0]["state"] == "open"
    warden.wait_until(slow_open, 15, "the hanging channel's breaker to open")
    warden.wait_until(lambda: metric(
        warden, 'warden_notifier_failed_total{channel="slow",reason="timeout"}') >= 3, 5,
        "timeouts counted: %r" % {k: v for k, v in warden.status()["notifier"]["metrics"].items()
                                  if "slow" in k})
    n = len(sink.hits("/hang"))
    time.sleep(1.0)
    assert len(sink.hits("/hang")) == n, "requests sent while the breaker is open"
    # While open, new alerts still reach the other channel.
    assert p.send(alert(10))["status"] == 0
    warden.wait_until(lambda: sink.ids("/fast")["a-10"] == 1, 5, "a-10 on the fast channel")
    assert sink.ids("/hang") == {}


def test_kill9_with_1000_pending_delivers_each_once(warden, redis, sink):
    sink.set("/k", "status", status=503)
    p = start(warden, redis, {"k": hook(sink, "/k", max_attempts="1000")},
              retry_base="200ms", retry_cap="2s")
    bodies = [alert(i, prefix="k") for i in range(1000)]
    acks = p.send_many(bodies, timeout=60)
    assert len(acks) == 1000 and all(r["status"] == 0 for r in acks.values())
    p.close()
    old = warden.status()["notifier"]["pid"]
    os.kill(old, signal.SIGKILL)
    # Requests already on the wire when it died are answered (503) first:
    # only then is the endpoint fixed, so none of them counts as delivered.
    time.sleep(0.5)
    sink.set("/k", "ok")
    warden.wait_new_pid("notifier", old, 15)
    ids = ["k-%d" % i for i in range(1000)]
    warden.wait_until(lambda: all(sink.ids("/k")[i] >= 1 for i in ids), 60,
                      "all 1000 delivered after the restart")
    time.sleep(1.0)
    got = sink.ids("/k")
    assert all(got[i] == 1 for i in ids), [i for i in ids if got[i] != 1][:10]
    assert dlq(warden, "list")["count"] == 0


def test_restart_lets_deliveries_in_flight_finish(warden, redis, sink):
    """A graceful stop (restart, reload, shutdown) waits for the requests
    already sent: each alert reaches the receiver once, not once before the
    stop and again after the restart."""
    sink.set("/g", "slow", delay=1.0)
    secs = notifier_sections(redis, {"g": hook(sink, "/g", concurrency="4")})
    secs["worker:notifier"]["stop_timeout"] = "5s"  # drains for up to half of it
    warden.start(secs)
    p = start_producer(warden)
    ids = ["g-%d" % i for i in range(4)]
    for i in range(4):
        assert p.send(alert(i, prefix="g"))["status"] == 0
    p.close()
    warden.wait_until(lambda: all(sink.arrived("/g")[i] == 1 for i in ids), 5,
                      "all 4 requests sent and waiting at the sink")
    old = warden.status()["notifier"]["pid"]
    assert warden.ctl("restart", "notifier") == {"affected": ["notifier"]}
    warden.wait_new_pid("notifier", old, 15)
    warden.wait_state("notifier", "RUNNING", 10, ready=True)
    time.sleep(2.0)  # a resend after the restart would have arrived by now
    got = sink.arrived("/g")
    log = "\n".join(l["line"] for l in warden.logs("notifier", 300))
    assert all(got[i] == 1 for i in ids), (got, log[-3000:])
    assert all(sink.ids("/g")[i] == 1 for i in ids), sink.ids("/g")
    assert "waiting up to" in log and "still unanswered" not in log, log[-3000:]


def test_redis_down_no_ack_then_all_delivered(warden, redis, sink):
    p = start(warden, redis, {"r": hook(sink, "/r")})
    redis.stop()
    time.sleep(0.5)
    held = [alert(i, prefix="r") for i in range(20)]
    # The producer's outbox: keeps every alert until it is acked.
    for b in held:
        r = p.send(b, timeout=5)
        assert r is None or r["status"] == WD_EUNAVAIL, r
    assert sum(sink.ids("/r").values()) == 0
    redis.start()
    deadline = time.monotonic() + 30
    pending = list(held)
    while pending and time.monotonic() < deadline:
        pending = [b for b in pending if not ((p.send(b) or {}).get("status") == 0)]
        if pending:
            time.sleep(0.2)
    assert not pending, "not acked after Redis came back: %d" % len(pending)
    warden.wait_until(lambda: all(sink.ids("/r")["r-%d" % i] == 1 for i in range(20)), 15,
                      "all delivered once Redis is back")


def test_malformed_alerts_error_names_the_field(warden, redis, sink):
    p = start(warden, redis, {"m": hook(sink, "/m")})
    cases = [
        ({k: v for k, v in alert(1).items() if k != "title"}, WD_EPROTO, "'title'"),
        (alert(2, text="x" * 5000), WD_ETOOBIG, "'text'"),
        (alert(3, severity="fatal"), WD_EINVAL, "'severity'"),
        (alert(4, id="has space"), WD_EINVAL, "'id'"),
        (alert(5, labels={"k": 1}), WD_EPROTO, "'labels.value'"),
        (alert(6, time=0), WD_EINVAL, "'time'"),
    ]
    for body, code, field in cases:
        r = p.send(body)
        assert r["status"] == code and field in r["error"], (body.get("id"), r)
    # Not msgpack at all, and the wrong message type: still an error reply.
    r = reply_of(p._conn().request(b"\xc1garbage"))
    assert r["status"] == WD_EPROTO and r["error"]
    r = reply_of(p._conn().request(pack({"kind": "state"}, mtype=5)))
    assert r["status"] == WD_EPROTO and "type" in r["error"]
    # ... and it keeps serving.
    assert p.send(alert(9))["status"] == 0
    warden.wait_until(lambda: sink.ids("/m")["a-9"] == 1, 10, "valid alert delivered")
    assert warden.status()["notifier"]["restarts"] == 0
    # Metrics reach status with the next heartbeat: wait for it.
    warden.wait_until(lambda: metric(warden, "warden_notifier_alerts_rejected_total") >= 8, 5,
                      "8 rejected alerts counted")


def test_dedup_merges_and_secret_url_never_shown(warden, redis, sink):
    secret = "/services/T000SECRET/B000SECRET/XXXXXXXXXXXXSECRET"
    sink.set(secret, "ok")
    url_file = warden.dir / "hook.url"
    url_file.write_text(sink.url(secret) + "\n")
    p = start(warden, redis, {"sec": {"type": "webhook", "url_file": str(url_file),
                                      "labels": "team=risk",
                                      "headers": "X-Api-Key=file:%s" % url_file}},
              dedup_window="1s")
    for i in range(5):
        assert p.send(alert(i, dedup_key="same", title="same thing"))["status"] == 0
    warden.wait_until(lambda: len(sink.requests(secret)) >= 2, 10, "first + summary")
    reqs = sink.requests(secret)
    import json
    first = json.loads(reqs[0][3])
    summary = json.loads(reqs[1][3])
    assert first["id"] == "a-0" and first["count"] == 1
    assert summary["labels"]["repeats"] == "4" and summary["count"] == 4, summary
    time.sleep(1.5)
    assert len(sink.requests(secret)) == 2
    assert reqs[0][4].get("X-Api-Key") == sink.url(secret)  # the header went out...
    text = warden.ctl("logs", "notifier", json=False).out + warden.stdout_path.read_text()
    text += str(warden.status_full())
    assert "SECRET" not in text  # ...but never into logs, status or metrics


def test_email_4xx_retries_5xx_dead(warden, redis, sink):
    smtp = SmtpSink().start()
    try:
        smtp.rcpt_code = 450
        p = start(warden, redis, {"mail": {
            "type": "email", "url": "smtp://127.0.0.1:%d" % smtp.port, "from": "warden@example.org",
            "to": "ops@example.org, risk@example.org", "severities": "critical",
            "max_attempts": "20"}})
        assert p.send(alert(1, severity="critical", title="position AAPL exited",
                            text="stop loss\nat 101.5"))["status"] == 0
        warden.wait_until(lambda: smtp.refused >= 2, 10, "450 retried")
        smtp.rcpt_code = 250
        warden.wait_until(lambda: len(smtp.messages) == 1, 10, "mail delivered after 4xx")
        frm, rcpts, data = smtp.messages[0]
        assert frm == "<warden@example.org>" and len(rcpts) == 2
        assert b"Subject: [critical] position AAPL exited\r\n" in data
        assert b"stop loss\r\nat 101.5" in data
        smtp.rcpt_code = 550
        assert p.send(alert(2, severity="critical"))["status"] == 0
        warden.wait_until(lambda: dlq(warden, "list")["count"] == 1, 10, "550 -> DLQ")
        d = dlq(warden, "list")["dead_letters"][0]
        assert d["id"] == "a-2" and d["attempts"] == 1 and "550" in d["error"]
    finally:
        smtp.stop()


def test_supervisor_events_become_alerts(warden, redis, sink):
    secs = notifier_sections(redis, {"ev": hook(sink, "/ev", labels="event=*")})
    secs["worker:crasher"] = worker("--crash-after", "200", required="no")
    warden.start(secs, wait_running=False)
    warden.wait_until(lambda: any(
        "crasher" in json_title for json_title in
        [r[3].decode() for r in sink.requests("/ev")]), 20, "a crash-loop alert for crasher")
    body = sink.requests("/ev")[0][3].decode()
    assert '"worker": "crasher"' in body.replace('":"', '": "')
