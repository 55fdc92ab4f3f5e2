"""warden-health end to end: the real warden runs warden-health and
warden-testworker workers; every request goes over loopback HTTP to the real
server. Covers each endpoint's status and body, and the issue's faults:
supervisor stopped (kill -STOP) -> /livez 503 within probe_deadline and 200
again after -CONT; a required worker crash-looping -> /readyz 503 naming it,
/livez 200; a critical breaker open in a worker -> /readyz 503, /livez 200;
the reset endpoint's 409 rules, the bearer token and the audit log; /metrics
with a real worker's histograms (the aggregator's) through `promtool check
metrics`."""
import http.client
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from wardenlib import BIN_DIR, FAST_WORKER, worker

HEALTH = BIN_DIR / "warden-health"
AGG = BIN_DIR / "warden-aggregator"
PROBE_DEADLINE_MS = 1000
TTL_MS = 100
MARGIN_S = 3.0


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_sections(port, token_file=None, **workers):
    """[worker:NAME] sections plus the health worker and its [health] section."""
    secs = dict(workers)
    secs["worker:health"] = worker(command=str(HEALTH), required="no")
    h = {"listen": "127.0.0.1:%d" % port, "snapshot_ttl": "%dms" % TTL_MS,
         "probe_deadline": "%dms" % PROBE_DEADLINE_MS, "heartbeat_max_age": "3s",
         "reset_min_open": "2s", "history_ttl": "200ms"}
    if token_file:
        h["api_token_file"] = str(token_file)
    secs["health"] = h
    return secs


def req(port, method, path, headers=None, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read().decode()
    finally:
        c.close()


def get_json(port, path):
    st, ct, body = req(port, "GET", path)
    assert ct.startswith("application/json"), (path, ct, body)
    return st, json.loads(body)


def wait_http(port, path, want_status, timeout, contains=None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = req(port, "GET", path, timeout=2)
            if last[0] == want_status and (contains is None or contains in last[2]):
                return last
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    raise AssertionError("%s never answered %s%s; last: %r" % (
        path, want_status, " with %r" % contains if contains else "", last))


@pytest.fixture
def port():
    return free_port()


def start(warden, port, token_file=None, **workers):
    warden.start(health_sections(port, token_file, **workers))
    wait_http(port, "/readyz", 200, 10)
    return warden


def test_endpoints_status_and_bodies(warden, port):
    start(warden, port, **{"worker:a": worker("--breaker", "redis:critical"),
                           "worker:b": worker(required="no")})
    st, ct, body = req(port, "GET", "/livez")
    assert (st, body) == (200, "ok\n") and ct.startswith("text/plain")
    st, _, body = req(port, "GET", "/livez?verbose")
    assert st == 200 and "[+]supervisor ok\n" in body and "[+]loop ok\n" in body
    st, _, body = req(port, "GET", "/readyz?verbose")
    assert st == 200 and "[+]worker:a ok" in body and "[+]breaker:a:redis ok" in body
    assert "worker:b" not in body  # not required
    assert body.endswith("readyz check passed\n")
    assert req(port, "GET", "/readyz/worker:a")[:3:2] == (200, "ok\n")
    assert req(port, "GET", "/readyz/nothing")[0] == 404

    st, hz = get_json(port, "/healthz")
    assert st == 200 and hz["live"] is True and hz["ready"] is True
    assert hz["supervisor"]["pid"] == warden.pid and hz["supervisor"]["version"]
    names = {w["name"]: w for w in hz["workers"]}
    assert set(names) == {"a", "b", "health"}
    a = names["a"]
    for k in ("state", "pid", "uptime_s", "restarts", "last_exit", "heartbeat_age_s", "progress",
              "loop_lag_us", "rss_bytes", "cpu_seconds"):
        assert k in a, k
    assert a["state"] == "RUNNING" and a["rss_bytes"] > 0
    assert {"running", "thread_alive", "last_cycle_time", "active_positions",
            "circuit_breaker_state", "recent_errors", "uptime_seconds"} <= set(hz["seed"])
    assert any(b["worker"] == "a" and b["breaker"] == "redis" and b["critical"]
               for b in hz["breakers"])

    st, ws = get_json(port, "/api/workers")
    assert st == 200 and {w["name"] for w in ws["workers"]} == {"a", "b", "health"}
    st, bs = get_json(port, "/api/circuit-breakers")
    kinds = {(b["worker"], b["breaker"]): b for b in bs["breakers"]}
    assert kinds[("a", "crash_loop")]["owner"] == "supervisor"
    assert kinds[("a", "redis")]["state"] == "closed" and kinds[("a", "redis")]["owner"] == "worker"

    st, ct, page = req(port, "GET", "/")
    assert st == 200 and ct.startswith("text/html")
    for hook in ('id="workers"', 'id="breakers"', 'id="events"', 'id="summary"', "dataset.worker",
                 "dataset.state", "fetch('/healthz'", 'name="viewport"'):
        assert hook in page, hook

    st, ct, metrics = req(port, "GET", "/metrics")
    assert st == 200 and ct.startswith("text/plain; version=0.0.4")
    for line in ('warden_worker_state{worker="a",state="RUNNING"} 1',
                 'warden_worker_up{worker="a"} 1', 'warden_worker_restarts_total{worker="a"} 0',
                 'warden_breaker_state{worker="a",breaker="redis",state="closed"} 1',
                 'warden_breaker_transitions_total{worker="a",breaker="crash_loop"} 0',
                 "warden_supervisor_up 1", 'warden_build_info{version="'):
        assert line in metrics, line
    for fam in ("warden_worker_heartbeat_age_seconds{", "warden_worker_resident_memory_bytes{",
                "warden_worker_cpu_seconds_total{", 'warden_testworker_ticks_total{worker="a"}'):
        assert fam in metrics, fam
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=metrics.encode(),
                           capture_output=True, timeout=30)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()

    # Errors are JSON: unknown path, wrong method, bad escape.
    st, ct, body = req(port, "GET", "/nope")
    assert st == 404 and json.loads(body)["status"] == 404
    st, ct, body = req(port, "DELETE", "/livez")
    assert st == 405 and "not allowed" in json.loads(body)["error"]
    st, ct, body = req(port, "POST", "/metrics")
    assert st == 405
    st, ct, body = req(port, "GET", "/livez%zz")
    assert st == 400 and ct.startswith("application/json")
    warden.stop()


def metric_value(text, series):
    """The value of the sample `series` (name{labels}) in a /metrics text, or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


def test_metrics_with_worker_histograms_pass_promtool(warden, port, tmp_path):
    """The aggregator's histograms reach the health worker as NAME_count and
    NAME_sum heartbeat samples; /metrics must still pass promtool (they were
    exported as gauges, which promtool rejects for those suffixes)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    if not os.access(AGG, os.X_OK):
        pytest.skip("warden-aggregator not built")
    csv = tmp_path / "ticks.csv"
    csv.write_text("ts,venue,symbol,bid,bid_size,ask,ask_size,last,last_size\n"
                   "1700000000.000,A,AAPL,100.0,10,100.4,5\n"
                   "1700000000.100,B,AAPL,100.1,3,100.3,7,100.2,1\n"
                   "1700000000.200,C,MSFT,50,1,50.5,2\n")
    agg = {"command": str(AGG)}
    agg.update(FAST_WORKER)
    start(warden, port, **{"worker:a": worker(), "worker:agg": agg,
                           "aggregator": {"symbols": "AAPL,MSFT", "venues": "A,B,C",
                                          "bar_intervals": "1s", "source": "replay",
                                          "replay_file": str(csv), "replay_speed": "0"}})
    count = 'warden_agg_batch_size_count{worker="agg"}'
    deadline = time.monotonic() + 10
    while True:
        st, ct, metrics = req(port, "GET", "/metrics")
        assert st == 200 and ct.startswith("text/plain; version=0.0.4")
        if (metric_value(metrics, count) or 0) > 0 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert metric_value(metrics, count) > 0, metrics
    p = subprocess.run([promtool, "check", "metrics"], input=metrics.encode(),
                       capture_output=True, timeout=30)
    assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
    for line in ("# TYPE warden_agg_batch_size summary\n",
                 "# TYPE warden_agg_publish_latency_seconds summary\n",
                 'warden_agg_batch_size_sum{worker="agg"} ',
                 'warden_agg_publish_latency_seconds_count{worker="agg"} '):
        assert line in metrics, line
    assert "# TYPE warden_agg_batch_size_count" not in metrics
    warden.stop()


def test_supervisor_stopped_livez_fails_within_deadline(warden, port):
    start(warden, port, **{"worker:a": worker()})
    os.kill(warden.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        wait_http(port, "/livez", 503, PROBE_DEADLINE_MS / 1000 + MARGIN_S)
        elapsed = time.monotonic() - t0
        assert elapsed <= PROBE_DEADLINE_MS / 1000 + TTL_MS / 1000 + 1.0, elapsed
        st, _, body = req(port, "GET", "/livez?verbose")
        assert st == 503 and "[-]supervisor failed: the supervisor has not answered" in body
        assert "[+]loop ok" in body
        # Probes are still answered at once, from the cache.
        t1 = time.monotonic()
        assert req(port, "GET", "/readyz")[0] == 503
        assert time.monotonic() - t1 < 1.0
        st, ct, metrics = req(port, "GET", "/metrics")
        assert st == 200 and "warden_supervisor_up 0" in metrics
    finally:
        os.kill(warden.pid, signal.SIGCONT)
    wait_http(port, "/livez", 200, MARGIN_S)
    wait_http(port, "/readyz", 200, MARGIN_S)
    warden.stop()


def test_required_worker_crash_loop_readyz_names_it(warden, port):
    warden.start(health_sections(port, **{"worker:a": worker(), "worker:crashy": worker(
        "--crash-after", "50", breaker_failures="2", breaker_cooldown="30s", min_uptime="5s")}),
        wait_running=False)
    _, _, body = wait_http(port, "/readyz?verbose", 503, 15, contains="crash-loop breaker open")
    assert "[-]worker:crashy failed: state BACKOFF" in body, body
    assert "[+]worker:a ok" in body
    st, _, body = req(port, "GET", "/readyz")
    assert st == 503 and "worker:crashy" in body and body.endswith("readyz check failed\n")
    assert req(port, "GET", "/readyz?exclude=crashy")[0] == 200
    assert req(port, "GET", "/livez")[0] == 200
    st, _, metrics = req(port, "GET", "/metrics")
    assert 'warden_breaker_state{worker="crashy",breaker="crash_loop",state="open"} 1' in metrics
    # Its crash-loop breaker is open and just opened: reset is refused...
    st, _, body = req(port, "POST", "/api/circuit-breakers/crashy/crash_loop/reset?reason=test")
    assert st == 409 and "recent" in json.loads(body)["error"], body
    # ...unless overridden.
    st, _, body = req(port, "POST",
                      "/api/circuit-breakers/crashy/crash_loop/reset?reason=test&override=true")
    assert st == 200, body
    warden.stop()


def test_critical_breaker_open_reset_rules_and_audit(warden, port):
    start(warden, port, **{"worker:a": worker("--breaker", "redis:critical",
                                             "--breaker", "cache")})
    warden.ctl("call", "a", "fail", "breaker=cache", "reason=ETIMEDOUT")
    # A non-critical open breaker does not make warden unready.
    wait_http(port, "/api/circuit-breakers", 200, 5, contains='"breaker":"cache","owner":"worker","state":"open"')
    assert req(port, "GET", "/readyz")[0] == 200
    # Not open: 409.
    st, _, body = req(port, "POST", "/api/circuit-breakers/a/redis/reset?reason=nothing+to+do")
    assert st == 409 and "not open" in json.loads(body)["error"]
    warden.ctl("call", "a", "fail", "breaker=redis", "reason=ECONNREFUSED 127.0.0.1:6379")
    _, _, body = wait_http(port, "/readyz", 503, 5)
    assert "[-]breaker:a:redis failed: critical breaker redis of a is open" in body
    assert req(port, "GET", "/livez")[0] == 200
    # Opened just now: 409 naming the failure; missing reason: 400; unknown: 404.
    st, _, body = req(port, "POST", "/api/circuit-breakers/a/redis/reset?reason=redis+is+back")
    assert st == 409 and "recent" in body and "ECONNREFUSED" in body, body
    assert req(port, "POST", "/api/circuit-breakers/a/redis/reset")[0] == 400
    assert req(port, "POST", "/api/circuit-breakers/a/nosuch/reset?reason=x")[0] == 404
    assert req(port, "POST", "/api/circuit-breakers/nosuch/redis/reset?reason=x")[0] == 404
    time.sleep(2.2)  # past reset_min_open
    st, _, body = req(port, "POST", "/api/circuit-breakers/a/redis/reset?reason=redis+is+back")
    assert st == 200, body
    res = json.loads(body)
    assert res["result"]["from"] == "open" and res["result"]["to"] == "closed"
    wait_http(port, "/readyz", 200, 5)
    # The audit log has every attempt, with client address, reason and time.
    lines = [json.loads(l) for l in (warden.run_dir / "audit.log").read_text().splitlines()]
    resets = [l for l in lines if l.get("action") == "breaker-reset" and l.get("breaker") == "redis"
              and l.get("worker") == "a"]
    assert [r["http_status"] for r in resets] == [409, 409, 200], resets
    assert all(r["client"].startswith("127.0.0.1:") and r["ts"] for r in resets)
    assert resets[-1]["reason"] == "redis is back" and resets[-1]["outcome"] == "reset"
    # History: the reset and the opening, newest first, with reasons.
    deadline = time.monotonic() + 5
    while True:
        _, hist = get_json(port, "/api/circuit-breakers/history")
        redis = [e for e in hist["history"] if e["breaker"] == "redis"]
        if len(redis) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert redis[0]["to"] == "closed" and redis[0]["reset"] and "redis is back" in redis[0]["reason"]
    assert redis[1]["to"] == "open" and "ECONNREFUSED" in redis[1]["reason"]
    warden.stop()


def test_bearer_token_on_mutating_endpoints(warden, port, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("s3cret-t0ken\n")
    start(warden, port, token_file=tok, **{"worker:a": worker()})
    assert req(port, "POST", "/api/workers/a/restart")[0] == 401
    st, _, body = req(port, "POST", "/api/workers/a/restart",
                      headers={"Authorization": "Bearer wrong"})
    assert st == 401 and json.loads(body)["status"] == 401
    old = warden.status("a")["pid"]
    st, _, body = req(port, "POST", "/api/workers/a/restart",
                      headers={"Authorization": "Bearer s3cret-t0ken"})
    assert st == 200 and json.loads(body)["result"]["affected"] == ["a"], body
    warden.wait_new_pid("a", old, 10)
    assert req(port, "POST", "/api/workers/zz/restart",
               headers={"Authorization": "Bearer s3cret-t0ken"})[0] == 404
    # Reads stay open; the token never shows in logs or metrics.
    assert req(port, "GET", "/livez")[0] == 200
    assert "s3cret" not in req(port, "GET", "/metrics")[2]
    warden.stop()
    assert "s3cret" not in warden.stderr_text() + warden.stdout_text()
