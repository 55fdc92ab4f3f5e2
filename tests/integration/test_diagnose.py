"""wardenctl diagnose against a real warden: the verdict and exit code
(0 healthy, 1 degraded, 2 down), the recommendations an operator acts on,
and the --json report's shape.

The cases: a healthy warden; a worker whose real breaker was opened with
`call W fail` (degraded, named in a recommendation); a required worker
crash-looping (down) beside an optional one doing the same (degraded); the
real aggregator with Redis unreachable (the connection gauge it publishes
in its heartbeat says so; the recommendation names the host:port from the
config and never the password in its URL); warden stopped (down, with a
clear message)."""
import json
import socket
import subprocess
import time

import pytest

from wardenlib import BIN_DIR, WARDENCTL, clean_env, worker

AGG = BIN_DIR / "warden-aggregator"

REPORT_KEYS = {"verdict", "exit_code", "generated_at", "supervisor", "workers", "breakers",
               "connectivity", "restarts", "findings", "recommendations"}
WORKER_KEYS = {"name", "kind", "state", "desired", "required", "ready", "pid", "uptime_s",
               "restarts", "last_exit", "last_exit_at", "heartbeat_age_s", "reason", "health"}
BREAKER_KEYS = {"worker", "breaker", "owner", "state", "critical", "opened_ago_s", "retry_in_s",
                "opens", "last_reason", "history"}
CONN_KEYS = {"worker", "dependency", "client", "source", "state", "ok", "target"}
FINDING_KEYS = {"severity", "worker", "subject", "message", "recommendation"}


def diagnose(warden, *extra, socket_path=None, timeout=30):
    argv = [str(WARDENCTL), "-s", str(socket_path or warden.control_sock), "diagnose", *extra]
    r = subprocess.run(argv, capture_output=True, timeout=timeout, env=clean_env(),
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


def report(warden, **kw):
    rc, out, err = diagnose(warden, "--json", **kw)
    try:
        rep = json.loads(out)
    except ValueError as e:
        raise AssertionError("diagnose --json printed invalid JSON (%s): %r\nstderr: %s" %
                             (e, out[:2000], err))
    assert rep["exit_code"] == rc, (rc, rep["exit_code"])
    return rc, rep


def wait_report(warden, pred, timeout, what):
    """Runs diagnose --json until pred(rc, rep) holds."""
    deadline = time.monotonic() + timeout
    while True:
        rc, rep = report(warden)
        if pred(rc, rep):
            return rc, rep
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s; last rc %d, findings:\n%s\n%s" % (
                what, rc, json.dumps(rep["findings"], indent=1), warden.diag()))
        time.sleep(0.1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_healthy_exits_0_with_every_section(warden):
    warden.start({"worker:a": worker("--breaker", "redis:critical"),
                  "worker:b": worker(required="no")})
    rc, rep = wait_report(warden, lambda rc, rep: rc == 0, 10, "a healthy report")
    assert REPORT_KEYS <= set(rep), set(rep)
    assert rep["verdict"] == "healthy" and rep["recommendations"] == []
    assert not [f for f in rep["findings"] if f["severity"] != "info"], rep["findings"]
    sup = rep["supervisor"]
    assert sup["reachable"] is True and sup["pid"] == warden.pid and sup["version"]
    ws = {w["name"]: w for w in rep["workers"]}
    assert set(ws) == {"a", "b"}
    for w in ws.values():
        assert WORKER_KEYS <= set(w), set(w)
        assert (w["state"], w["health"]) == ("RUNNING", "ok")
    assert ws["a"]["required"] is True and ws["b"]["required"] is False
    brks = {(b["worker"], b["breaker"]): b for b in rep["breakers"]}
    assert set(brks) == {("a", "crash_loop"), ("b", "crash_loop"), ("a", "redis")}
    for b in brks.values():
        assert BREAKER_KEYS <= set(b), set(b)
    assert brks[("a", "redis")]["owner"] == "worker" and brks[("a", "redis")]["critical"] is True
    assert brks[("a", "crash_loop")]["owner"] == "supervisor"
    conn = rep["connectivity"]
    assert [(c["worker"], c["dependency"], c["ok"]) for c in conn] == [("a", "redis", True)]
    assert CONN_KEYS <= set(conn[0])

    rc, out, err = diagnose(warden)
    assert rc == 0, (out, err)
    assert out.startswith("warden diagnose: HEALTHY"), out
    for section in ("\nworkers\n", "\nbreakers\n", "\nconnectivity\n", "\nrecent restarts\n",
                    "\nfindings\n", "\nrecommendations\n  nothing to do\n"):
        assert section in out, (section, out)


def test_open_breaker_is_degraded_and_named(warden):
    warden.start({"worker:a": worker("--breaker", "redis"), "worker:b": worker()})
    warden.ctl("call", "a", "fail", "breaker=redis", "reason=ECONNREFUSED on 10.0.0.9:6379")
    rc, rep = report(warden)
    assert rc == 1 and rep["verdict"] == "degraded", rep["findings"]
    brk = next(b for b in rep["breakers"] if (b["worker"], b["breaker"]) == ("a", "redis"))
    assert brk["state"] == "open" and brk["opens"] == 1
    assert isinstance(brk["opened_ago_s"], float) and 0 <= brk["opened_ago_s"] < 30
    assert "ECONNREFUSED" in brk["last_reason"]
    assert brk["history"] and brk["history"][0]["to"] == "open"
    conn = [c for c in rep["connectivity"] if c["worker"] == "a"]
    assert conn and conn[0]["dependency"] == "redis" and conn[0]["ok"] is False
    finds = [f for f in rep["findings"] if f["severity"] == "degraded"]
    assert len(finds) == 1, rep["findings"]
    f = finds[0]
    assert FINDING_KEYS <= set(f)
    assert (f["worker"], f["subject"]) == ("a", "breaker")
    assert "breaker redis in a open for" in f["message"] and "ECONNREFUSED" in f["message"]
    assert f["recommendation"].startswith("check redis")
    assert any("breaker redis in a open" in r and "check redis" in r
               for r in rep["recommendations"]), rep["recommendations"]

    rc, out, err = diagnose(warden)
    assert rc == 1 and out.startswith("warden diagnose: DEGRADED"), out
    assert "[degraded] breaker redis in a open for" in out
    assert "  1. breaker redis in a open for" in out, out

    # Closed again (a successful trial after the reset): healthy.
    warden.ctl("call", "a", "breaker-reset", "name=redis", "reason=test", "override=true")
    rc, rep = report(warden)
    assert rc == 0, rep["findings"]


def crashy(**keys):
    keys.setdefault("breaker_failures", "3")
    keys.setdefault("breaker_cooldown", "30s")
    return worker("--exit-after", "20", "--exit-code", "3", **keys)


def test_required_worker_crash_looping_is_down(warden):
    warden.start({"worker:ok": worker(), "worker:crashy": crashy()}, wait_running=False)
    rc, rep = wait_report(
        warden, lambda rc, rep: any(b["worker"] == "crashy" and b["breaker"] == "crash_loop"
                                    and b["state"] == "open" for b in rep["breakers"]),
        15, "crashy's crash-loop breaker to open")
    assert rc == 2 and rep["verdict"] == "down"
    w = next(w for w in rep["workers"] if w["name"] == "crashy")
    assert w["health"] == "not_running" and w["last_exit"] == "exit 3" and w["restarts"] >= 3
    down = [f for f in rep["findings"] if f["severity"] == "down"]
    assert len(down) == 1 and down[0]["worker"] == "crashy", rep["findings"]
    assert "crash-loop breaker open" in down[0]["message"]
    assert "wardenctl logs crashy" in down[0]["recommendation"]
    assert "wardenctl reset crashy --reason" in down[0]["recommendation"]
    assert rep["recommendations"][0].startswith("crashy (required) is BACKOFF"), rep
    assert any(r["worker"] == "crashy" and r["what"] == "exit 3" for r in rep["restarts"])
    assert any(r["worker"] == "crashy" and "crash-loop breaker closed -> open" in r["what"]
               for r in rep["restarts"]), rep["restarts"]
    rc, out, _ = diagnose(warden)
    assert rc == 2 and out.startswith("warden diagnose: DOWN") and "[down] crashy" in out


def test_optional_worker_crash_looping_is_degraded(warden):
    warden.start({"worker:ok": worker(), "worker:crashy": crashy(required="no")},
                 wait_running=False)
    rc, rep = wait_report(
        warden, lambda rc, rep: any(b["worker"] == "crashy" and b["state"] == "open"
                                    for b in rep["breakers"]),
        15, "crashy's crash-loop breaker to open")
    assert rc == 1 and rep["verdict"] == "degraded", rep["findings"]
    assert [f["worker"] for f in rep["findings"] if f["severity"] == "degraded"] == ["crashy"]


@pytest.mark.skipif(not AGG.exists(), reason="warden-aggregator not built")
def test_redis_unreachable_names_host_not_password(warden):
    """The real aggregator with its Redis sink pointed at a port nothing
    listens on: its heartbeat's warden_redis_connection_state gauge is not
    'ready'. The worker is named agg; its settings are in [aggregator]
    (found through its command, warden-aggregator)."""
    port = free_port()
    secret = "s3cret-Pw-1234"
    warden.start({"worker:agg": worker(command=str(AGG)),
                  "aggregator": {"symbols": "AAPL", "venues": "A", "source": "synthetic",
                                 "synthetic_rate": "10",
                                 "redis_url": "redis://bob:%s@127.0.0.1:%d/0" % (secret, port)}})
    rc, rep = wait_report(warden, lambda rc, rep: any(
        c["worker"] == "agg" and c["source"] == "metric:warden_redis_connection_state"
        and not c["ok"] for c in rep["connectivity"]), 15, "the redis gauge to say not ready")
    assert rc == 1, rep["findings"]
    row = next(c for c in rep["connectivity"] if c["source"].startswith("metric:") and not c["ok"])
    assert row["dependency"] == "redis" and row["target"] == "127.0.0.1:%d" % port
    assert row["state"] in ("connecting", "backoff")
    want = "check redis at 127.0.0.1:%d" % port
    assert any(want in r for r in rep["recommendations"]), rep["recommendations"]
    rc, out, err = diagnose(warden)
    assert want in out
    _, jout, _ = diagnose(warden, "--json")
    for text in (out, err, jout):
        assert secret not in text and "bob" not in text


def test_target_from_wardens_environment_wins_over_the_file(warden):
    """scripts/run and Kubernetes set addresses with WARDEN_<SECTION>_<KEY>
    in warden's environment; wardenctl, run from another shell, does not
    have them. diagnose reads warden's own environment: the file's address
    is overridden, and one only in the environment is found too."""
    port = free_port()
    secret = "env-Pw-5678"
    warden.start({"worker:agg": worker(command=str(AGG)),
                  "aggregator": {"symbols": "AAPL", "venues": "A", "source": "synthetic",
                                 "synthetic_rate": "10",
                                 "redis_url": "redis://127.0.0.1:1/0"}},
                 env={"WARDEN_AGGREGATOR_REDIS_URL":
                      "redis://bob:%s@127.0.0.1:%d/0" % (secret, port)})
    rc, rep = wait_report(warden, lambda rc, rep: any(
        c["worker"] == "agg" and c["source"] == "metric:warden_redis_connection_state"
        and not c["ok"] for c in rep["connectivity"]), 15, "the redis gauge to say not ready")
    row = next(c for c in rep["connectivity"] if c["source"].startswith("metric:") and not c["ok"])
    assert row["target"] == "127.0.0.1:%d" % port, row
    assert any("check redis at 127.0.0.1:%d" % port in r for r in rep["recommendations"])
    for text in diagnose(warden)[1:] + diagnose(warden, "--json")[1:]:
        assert secret not in text and "bob" not in text
    warden.stop()
    # Not in the file at all: only warden's environment has it.
    warden.proc = None
    warden.start({"worker:agg": worker(command=str(AGG)),
                  "aggregator": {"symbols": "AAPL", "venues": "A", "source": "synthetic",
                                 "synthetic_rate": "10"}},
                 env={"WARDEN_AGGREGATOR_REDIS_URL": "redis://127.0.0.1:%d/0" % port})
    rc, rep = wait_report(warden, lambda rc, rep: any(
        c["worker"] == "agg" and c["source"] == "metric:warden_redis_connection_state"
        and not c["ok"] for c in rep["connectivity"]), 15, "the redis gauge to say not ready")
    row = next(c for c in rep["connectivity"] if c["source"].startswith("metric:") and not c["ok"])
    assert row["target"] == "127.0.0.1:%d" % port, row
    warden.stop()


def test_supervisor_down_exits_2_with_clear_message(warden):
    warden.start({"worker:a": worker()})
    sock = warden.control_sock
    warden.stop()
    rc, out, err = diagnose(warden, socket_path=sock)
    assert rc == 2
    assert "warden is not running (no answer on ipc://%s" % sock in err, err
    assert out.startswith("warden diagnose: DOWN  (warden is not running"), out
    assert "start warden" in out
    rc, rep = report(warden, socket_path=sock)
    assert rc == 2 and rep["verdict"] == "down"
    assert rep["supervisor"]["reachable"] is False and "not running" in rep["supervisor"]["error"]
    assert rep["workers"] == [] and rep["findings"][0]["subject"] == "supervisor"


def test_usage_errors(warden, tmp_path):
    sock = tmp_path / "none.sock"
    for args in (["extra"], ["-f"], ["--reason", "x"]):
        rc, out, err = diagnose(warden, *args, socket_path=sock)
        assert rc == 2 and out == "" and "usage: wardenctl diagnose [--json]" in err, (args, err)
