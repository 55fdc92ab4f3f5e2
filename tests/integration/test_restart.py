"""Crashes and restarts: kill -9 of workers and of the supervisor, plain
[program:] sections and their restart policies, depends_on ordering."""
import os
import signal
import time

from wardenlib import (MARGIN_S, logged_transitions, pid_alive,
                       program, wait_pids_gone, worker)

RESTART_BOUND_S = 0.5 + MARGIN_S  # backoff_cap + slack


def test_kill9_worker_is_restarted(warden):
    warden.start({"worker:a": worker(), "worker:b": worker()})
    time.sleep(1.2)  # past min_uptime: a clean, immediate restart
    before = warden.status()
    a, b = before["a"], before["b"]
    os.kill(a["pid"], signal.SIGKILL)
    new = warden.wait_new_pid("a", a["pid"], RESTART_BOUND_S)
    assert new["restarts"] == a["restarts"] + 1
    assert new["last_exit"] == "signal 9 (KILL)"
    assert new["last_exit_at"] is not None
    assert not pid_alive(a["pid"])
    # The other worker was not touched.
    b2 = warden.status("b")
    assert b2["pid"] == b["pid"] and b2["restarts"] == b["restarts"] and b2["state"] == "RUNNING"
    # The exit and the way back to RUNNING are in the event log.
    evs = warden.events()
    assert any(e["kind"] == "exit" and e["worker"] == "a" and "signal 9" in e["reason"] for e in evs)
    tr = [(e["from"], e["to"]) for e in warden.transitions("a", evs)]
    assert tr[-1][1] == "RUNNING", tr
    warden.stop()


def test_kill9_all_workers_at_once_all_restarted(warden):
    names = ["a", "b", "c"]
    secs = {"worker:%s" % n: worker() for n in names}
    secs["program:p"] = program("/bin/sleep 1000")
    warden.start(secs)
    time.sleep(1.2)
    before = warden.status()
    for w in before.values():
        os.kill(w["pid"], signal.SIGKILL)

    def all_back(st):
        return all(st[n]["state"] == "RUNNING" and st[n]["ready"] and
                   st[n]["pid"] not in (None, before[n]["pid"]) for n in before)

    st = warden.wait_for(all_back, RESTART_BOUND_S + 2, "every program back with a new pid")
    for n in before:
        assert st[n]["restarts"] == before[n]["restarts"] + 1, (n, st[n])
        assert st[n]["last_exit"] == "signal 9 (KILL)", (n, st[n])
    warden.stop()


def test_supervisor_kill9_leaves_no_worker_behind(warden):
    warden.start({"worker:a": worker(), "worker:b": worker("--ignore-term"),
                  "worker:c": worker(depends_on="a"), "program:p": program("/bin/sleep 1000")})
    pids = [w["pid"] for w in warden.status().values()]
    assert len(pids) == 4 and all(pid_alive(p) for p in pids)
    warden.kill()
    # PR_SET_PDEATHSIG: every child goes with its parent, within a second.
    took = wait_pids_gone(pids, 1.0 + 0.5)
    assert took < 1.5


def test_program_supervised_and_restarted_on_kill9(warden):
    warden.start({"program:sleeper": program("/bin/sleep 1000")})
    w = warden.status("sleeper")
    assert w["kind"] == "program" and w["state"] == "RUNNING" and w["ready"]
    assert w["heartbeat_age_s"] is None  # process liveness only
    with open("/proc/%d/cmdline" % w["pid"], "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"/bin/sleep", b"1000"]
    time.sleep(1.2)
    os.kill(w["pid"], signal.SIGKILL)
    new = warden.wait_new_pid("sleeper", w["pid"], RESTART_BOUND_S)
    assert new["restarts"] == 1
    assert new["last_exit"] == "signal 9 (KILL)"
    warden.stop()


def test_program_restart_never_nonzero_exit_is_fatal(warden):
    warden.start({"program:once": program("/bin/sh -c 'sleep 0.3; exit 3'", restart="never")},
                 wait_running=False)
    w = warden.wait_state("once", "FATAL", 5 + MARGIN_S)
    assert w["pid"] is None
    assert w["last_exit"] == "exit 3"
    assert w["desired"] == "down"
    assert w["restarts"] == 0
    time.sleep(0.5)  # and it stays there
    w = warden.status("once")
    assert w["state"] == "FATAL" and w["restarts"] == 0
    warden.stop()


def test_program_on_failure_exit0_is_stopped(warden):
    warden.start({"program:job": program("/bin/sh -c 'sleep 0.3; exit 0'", restart="on-failure"),
                  "program:bad": program("/bin/sh -c 'sleep 0.3; exit 4'", restart="on-failure")},
                 wait_running=False)
    w = warden.wait_state("job", "STOPPED", 5 + MARGIN_S, last_exit="exit 0")
    assert w["pid"] is None and w["restarts"] == 0
    # on-failure does restart a failing one.
    warden.wait_for(lambda st: st["bad"]["restarts"] >= 2, 5 + MARGIN_S, "bad restarted twice")
    time.sleep(0.5)
    w = warden.status("job")
    assert w["state"] == "STOPPED" and w["restarts"] == 0
    warden.stop()


def test_depends_on_start_order_and_reverse_shutdown(warden):
    # a <- b <- c: each starts only once the one before is READY; a and b
    # take a while to be ready so a premature start would show.
    warden.start({
        "worker:c": worker("--slow-stop", 300, depends_on="b"),
        "worker:b": worker("--ready-delay", 400, "--slow-stop", 300, depends_on="a"),
        "worker:a": worker("--ready-delay", 400),
    }, timeout=15)
    evs = warden.events()

    def seq_of(worker_name, frm, to):
        for e in evs:
            if e["kind"] == "state" and e["worker"] == worker_name and e["from"] == frm and e["to"] == to:
                return e["seq"]
        raise AssertionError("no %s %s -> %s in events: %s" % (worker_name, frm, to, evs))

    a_ready = seq_of("a", "STARTING", "RUNNING")
    b_start = seq_of("b", "STOPPED", "STARTING")
    b_ready = seq_of("b", "STARTING", "RUNNING")
    c_start = seq_of("c", "STOPPED", "STARTING")
    assert a_ready < b_start < b_ready < c_start, evs
    # Before its dependency was ready, b was waiting, not started.
    st = warden.status()
    assert st["b"]["restarts"] == 0 and st["c"]["restarts"] == 0

    warden.stop()
    order = logged_transitions(warden.stderr_text())
    shutdown = order[[i for i, t in enumerate(order) if t[0] == "c" and t[2] == "STOPPING"][-1]:]

    def idx(name, to):
        return next(i for i, t in enumerate(shutdown) if t[0] == name and t[2] == to)

    # c stops completely before b is asked to stop, and b before a.
    assert idx("c", "STOPPED") < idx("b", "STOPPING"), shutdown
    assert idx("b", "STOPPED") < idx("a", "STOPPING"), shutdown
    assert idx("a", "STOPPED") > idx("a", "STOPPING")


def test_stop_signal_reaches_what_a_wrapper_started(warden, tmp_path):
    # A wrapper shell that ignores SIGTERM and waits for its child: the
    # child gets stop_signal too (the whole process group), and exits
    # gracefully, instead of being SIGKILLed after stop_timeout.
    mark = tmp_path / "child-got-term"
    child = ("import signal, sys, time\n"
             "def term(*a):\n"
             "    open(%r, 'w').write('term')\n"
             "    sys.exit(0)\n"
             "signal.signal(signal.SIGTERM, term)\n"
             "time.sleep(1000)\n") % str(mark)
    script = tmp_path / "child.py"
    script.write_text(child)
    warden.start({"program:w": program(
        "/bin/sh -c 'trap \"\" TERM; /usr/bin/python3 %s & wait'" % script,
        stop_timeout="5s")})
    time.sleep(0.5)  # python has set its handler
    t0 = time.monotonic()
    warden.ctl("stop", "w")
    st = warden.wait_state("w", "STOPPED", 5 + MARGIN_S)
    assert mark.exists(), "the wrapper's child never got SIGTERM"
    assert time.monotonic() - t0 < 4.0, "stopped only by the SIGKILL after stop_timeout"
    assert st["last_exit"] == "exit 0", st
    warden.stop()
