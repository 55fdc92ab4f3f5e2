"""Liveness and the stop path: a stopped (SIGSTOP) or hung worker is found
UNRESPONSIVE and replaced; a worker that never sends READY is replaced after
start_timeout; a worker that ignores SIGTERM is SIGKILLed after stop_timeout."""
import os
import re
import signal
import time
from datetime import datetime

from wardenlib import (HB_TIMEOUT_MS, MARGIN_S, STOP_TIMEOUT_MS, pid_alive, worker,
                       summarize_status as summarize)

HB_TIMEOUT_S = HB_TIMEOUT_MS / 1000.0
STOP_TIMEOUT_S = STOP_TIMEOUT_MS / 1000.0


def ts(e):
    return datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()


def test_sigstop_worker_unresponsive_killed_and_restarted(warden):
    warden.start({"worker:a": worker(), "worker:b": worker()})
    a = warden.status("a")
    assert a["heartbeat_age_s"] is not None and a["heartbeat_age_s"] < HB_TIMEOUT_S
    t0 = time.monotonic()
    os.kill(a["pid"], signal.SIGSTOP)
    try:
        new = warden.wait_new_pid("a", a["pid"], HB_TIMEOUT_S + STOP_TIMEOUT_S + MARGIN_S)
    finally:
        if pid_alive(a["pid"]):
            os.kill(a["pid"], signal.SIGCONT)
    took = time.monotonic() - t0
    # Not before the heartbeat timeout: the supervisor waited for silence.
    assert took >= HB_TIMEOUT_S * 0.9, took
    assert new["restarts"] == 1
    assert not pid_alive(a["pid"])
    evs = warden.events()
    tr = warden.transitions("a", evs)
    unresp = [e for e in tr if e["from"] == "RUNNING" and e["to"] == "UNRESPONSIVE"]
    assert unresp, "no RUNNING -> UNRESPONSIVE for a: %s" % tr
    assert "heartbeat" in unresp[0]["reason"], unresp[0]
    # After UNRESPONSIVE came a start and RUNNING again.
    after = tr[tr.index(unresp[0]) + 1:]
    assert any(e["to"] == "STARTING" for e in after), tr
    assert after[-1]["to"] == "RUNNING", tr
    # b was not disturbed.
    assert warden.status("b")["restarts"] == 0
    warden.stop()


def test_hung_worker_unresponsive_then_sigkilled(warden):
    # `hang` blocks the worker's loop: no heartbeats, and SIGTERM (handled on
    # the loop) is never acted on, so only SIGKILL ends it.
    warden.start({"worker:a": worker()})
    a = warden.status("a")
    assert warden.ctl("call", "a", "hang")["action"] == "hang"
    new = warden.wait_new_pid("a", a["pid"], HB_TIMEOUT_S + STOP_TIMEOUT_S + MARGIN_S)
    assert new["restarts"] == 1
    assert warden.status("a")["last_exit"] == "signal 9 (KILL)"
    tos = [e["to"] for e in warden.transitions("a")]
    assert "UNRESPONSIVE" in tos
    warden.stop()


def test_no_ready_killed_and_restarted_after_start_timeout(warden):
    start_timeout_ms = 1500
    warden.start({"worker:slow": worker("--no-ready", start_timeout="%dms" % start_timeout_ms,
                                        min_uptime="10s")}, wait_running=False)
    first = warden.wait_state("slow", "STARTING", 5)
    assert first["ready"] is False and first["pid"]
    # Replaced after start_timeout: a new pid, still not ready.
    warden.wait_for(lambda st: st["slow"]["pid"] not in (None, first["pid"]),
                    start_timeout_ms / 1000 + STOP_TIMEOUT_S + MARGIN_S, "a second process")
    assert not pid_alive(first["pid"])
    tr = warden.transitions("slow")
    starting = next(e for e in tr if e["to"] == "STARTING")
    unresp = next((e for e in tr if e["from"] == "STARTING" and e["to"] == "UNRESPONSIVE"), None)
    assert unresp is not None, tr
    assert "start_timeout" in unresp["reason"], unresp
    waited = ts(unresp) - ts(starting)
    assert start_timeout_ms / 1000 - 0.05 <= waited <= start_timeout_ms / 1000 + 1.5, waited
    w = warden.status("slow")
    assert w["restarts"] >= 1 and w["state"] in ("STARTING", "BACKOFF")
    assert w["ready"] is False
    warden.stop()


def test_ignore_term_sigkilled_after_stop_timeout(warden):
    stop_timeout_ms = 1500
    warden.start({"worker:stubborn": worker("--ignore-term", stop_timeout="%dms" % stop_timeout_ms),
                  "worker:polite": worker()})
    pid = warden.status("stubborn")["pid"]
    t0 = time.monotonic()
    out = warden.ctl("stop", "stubborn")
    assert out["affected"] == ["stubborn"]
    # It ignores SIGTERM, so it is still there and STOPPING (asked at once:
    # a fixed sleep here raced stop_timeout on a loaded machine)...
    w = warden.status("stubborn")
    assert w["state"] == "STOPPING" and pid_alive(pid), w
    # ...then SIGKILL after stop_timeout.
    w = warden.wait_state("stubborn", "STOPPED", stop_timeout_ms / 1000 + MARGIN_S)
    took = time.monotonic() - t0
    assert took >= stop_timeout_ms / 1000 * 0.9, took
    assert w["last_exit"] == "signal 9 (KILL)" and w["pid"] is None and w["desired"] == "down"
    assert not pid_alive(pid)
    assert re.search(r"stubborn: did not stop within %dms, sending SIGKILL" % stop_timeout_ms,
                     warden.stderr_text())
    # The polite one stops on SIGTERM at once, with exit 0.
    t0 = time.monotonic()
    warden.ctl("stop", "polite")
    w = warden.wait_state("polite", "STOPPED", STOP_TIMEOUT_S + MARGIN_S)
    assert w["last_exit"] == "exit 0"
    assert time.monotonic() - t0 < STOP_TIMEOUT_S + 1
    warden.stop()


def test_shutdown_kills_term_ignoring_worker_and_exits_0(warden):
    warden.start({"worker:stubborn": worker("--ignore-term")})
    pid = warden.status("stubborn")["pid"]
    t0 = time.monotonic()
    warden.stop(timeout=STOP_TIMEOUT_S + 10)
    assert time.monotonic() - t0 < STOP_TIMEOUT_S + MARGIN_S
    assert not pid_alive(pid)


def test_stopped_supervisor_does_not_blame_its_workers_on_resume(warden):
    # warden itself stopped for more than heartbeat_timeout: the workers kept
    # sending heartbeats, which are queued. On SIGCONT the late timeouts must
    # not restart healthy workers.
    warden.start({"worker:a": worker(), "worker:b": worker()})
    before = warden.status()
    os.kill(warden.pid, signal.SIGSTOP)
    try:
        time.sleep(HB_TIMEOUT_S * 2.5)
    finally:
        os.kill(warden.pid, signal.SIGCONT)
    time.sleep(HB_TIMEOUT_S + 0.5)  # past one more timeout: now with heartbeats read
    st = warden.status()
    for n in ("a", "b"):
        assert st[n]["pid"] == before[n]["pid"] and st[n]["restarts"] == 0, summarize(st)
        assert st[n]["state"] == "RUNNING", summarize(st)
    assert "noticed" in warden.stderr_path.read_text()
    # Liveness still works afterwards: a stopped worker is replaced.
    os.kill(before["a"]["pid"], signal.SIGSTOP)
    try:
        warden.wait_new_pid("a", before["a"]["pid"], HB_TIMEOUT_S + STOP_TIMEOUT_S + MARGIN_S)
    finally:
        if pid_alive(before["a"]["pid"]):
            os.kill(before["a"]["pid"], signal.SIGCONT)
    warden.stop()
