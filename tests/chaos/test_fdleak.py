"""Regression for the chaos run's fd leak (seed 673835561): a worker that
exits gracefully (SIGTERM) and is restarted must not leave warden's file
descriptors growing, and `call` must keep working after the restart.

Found with this file: after one to four graceful worker exits warden's nng
reaper thread hangs for good; from then on no nng pipe or socket is ever
freed (every wardenctl connection, every listener-watchdog probe leaks a
socket pair, ~9 fds/s) and calls to the restarted worker time out."""
import os
import signal
import subprocess
import time

from wardenlib import MIN_UPTIME_MS, WARDENCTL, clean_env, worker

ROUNDS = 10
FD_MARGIN = 8  # watchdog probes and wardenctl connections in flight


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def settled_fds(warden, seconds=1.5):
    """The smallest fd count seen over a short window: transient sockets
    (probes, a wardenctl just gone) come and go, a leak only grows."""
    t_end = time.monotonic() + seconds
    low = nfds(warden.pid)
    while time.monotonic() < t_end:
        time.sleep(0.1)
        low = min(low, nfds(warden.pid))
    return low


def test_graceful_worker_restarts_leak_no_fds_and_calls_still_work(warden):
    warden.start({"worker:a": worker(), "worker:b": worker()})
    assert warden.ctl("call", "a", "echo", "k=v")  # the REQ socket to a exists
    base = settled_fds(warden)
    for i in range(ROUNDS):
        time.sleep(MIN_UPTIME_MS / 1000 + 0.2)  # a clean run: no crash-loop breaker
        pid = warden.status("a")["pid"]
        # A call in flight when the worker goes (the chaos run's pattern).
        p = subprocess.Popen([str(WARDENCTL), "-s", str(warden.control_sock), "call", "a",
                              "sleep", "ms=2000"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=clean_env())
        warden.helpers.append(p)
        time.sleep(0.3)
        os.kill(pid, signal.SIGTERM)
        assert p.wait(timeout=30) != 0  # the worker went away: the call fails
        warden.wait_new_pid("a", pid, 20)
        warden.wait_for(lambda st: st["a"]["state"] == "RUNNING" and st["a"]["ready"], 20)
        r = warden.ctl("call", "a", "echo", "k=v%d" % i, json=False, check=False)
        assert r.rc == 0, (i, r.err)
    now = settled_fds(warden, 3.0)
    assert now <= base + FD_MARGIN, (base, now)
    warden.stop()
