"""Reload (wardenctl reload and SIGHUP): only what changed restarts, added
programs start, removed ones stop; a bad config is refused and nothing moves."""
import signal
import time

from wardenlib import BIN_DIR, MARGIN_S, STOP_TIMEOUT_MS, pid_alive, program, worker


def initial():
    return {"worker:keep": worker("--print", "keep"),
            "worker:change": worker("--print", "before"),
            "worker:gone": worker("--print", "gone"),
            "program:sleeper": program("/bin/sleep 1000")}


def changed():
    return {"worker:keep": worker("--print", "keep"),
            "worker:change": worker("--print", "after"),
            "program:sleeper": program("/bin/sleep 1000"),
            "worker:new": worker("--print", "new", depends_on="keep")}


def check_after_reload(warden, before):
    st = warden.wait_for(
        lambda s: "gone" not in s and s.get("new", {}).get("state") == "RUNNING"
        and s["change"]["state"] == "RUNNING" and s["change"]["ready"]
        and s["change"]["pid"] != before["change"]["pid"],
        STOP_TIMEOUT_MS / 1000 + MARGIN_S, "the reload to take effect")
    assert st["keep"]["pid"] == before["keep"]["pid"] and st["keep"]["restarts"] == 0
    assert st["sleeper"]["pid"] == before["sleeper"]["pid"]
    assert not pid_alive(before["change"]["pid"])
    assert not pid_alive(before["gone"]["pid"])
    assert st["new"]["ready"] is True
    # The changed worker runs the new command.
    lines = [l["line"] for l in warden.logs("change") if l["stream"] == "stdout"]
    assert lines[-1] == "after", lines
    return st


def test_wardenctl_reload(warden):
    warden.start(initial())
    before = warden.status()
    warden.write_config(changed())
    rep = warden.ctl("reload")
    assert {k: sorted(v) for k, v in rep.items()} == {
        "added": ["new"], "removed": ["gone"], "restarted": ["change"], "updated": [],
        "unchanged": ["keep", "sleeper"], "not_applied": []}, rep
    check_after_reload(warden, before)
    # Reloading the same file again changes nothing.
    rep = warden.ctl("reload")
    assert rep["added"] == [] and rep["removed"] == [] and rep["restarted"] == [], rep
    r = warden.ctl("reload", json=False)
    assert r.rc == 0 and "no changes" in r.out
    warden.stop()


def test_sighup_reload(warden):
    warden.start(initial())
    before = warden.status()
    warden.write_config(changed())
    warden.signal(signal.SIGHUP)
    check_after_reload(warden, before)
    evs = warden.events()
    assert any(e["kind"] == "config" and "1 added, 1 removed, 1 restarted" in e["reason"]
               for e in evs), [e for e in evs if e["kind"] == "config"]
    warden.stop()


def test_reload_bad_config_refused(warden):
    warden.start(initial())
    before = warden.status()
    good = warden.config.read_text()
    bad = good.replace("[worker:change]", "[worker:change]\nheartbeat_interval = fast")
    bad_line = bad.splitlines().index("heartbeat_interval = fast") + 1
    warden.write_raw_config(bad)
    r = warden.ctl("reload", json=False)
    assert r.rc == 1, r
    assert "%s:%d:" % (warden.config, bad_line) in r.err and "heartbeat_interval" in r.err, r.err
    # SIGHUP with the same bad file: refused too, logged.
    warden.signal(signal.SIGHUP)
    warden.wait_until(lambda: warden.stderr_text().count("reload refused") >= 1, MARGIN_S,
                      "warden to log the refused SIGHUP reload")
    time.sleep(0.5)
    st = warden.status()
    for n, w in before.items():
        assert st[n]["pid"] == w["pid"] and st[n]["state"] == "RUNNING", (n, st[n])
    assert warden.ctl("ping", json=False).rc == 0
    # A fixed file reloads fine afterwards and the old settings were kept
    # meanwhile (nothing restarted).
    warden.write_raw_config(good)
    rep = warden.ctl("reload")
    assert rep["restarted"] == [] and rep["added"] == [] and rep["removed"] == [], rep
    warden.stop()


def test_reload_stopped_worker_stays_stopped_and_removed_program_goes(warden):
    warden.start({"worker:a": worker(), "worker:b": worker(),
                  "program:p": program("/bin/sleep 1000")})
    warden.ctl("stop", "a")
    warden.wait_state("a", "STOPPED", STOP_TIMEOUT_MS / 1000 + MARGIN_S)
    p_pid = warden.status("p")["pid"]
    warden.write_config({"worker:a": worker(), "worker:b": worker()})
    rep = warden.ctl("reload")
    assert rep["removed"] == ["p"], rep
    warden.wait_for(lambda s: "p" not in s, STOP_TIMEOUT_MS / 1000 + MARGIN_S, "p removed")
    assert not pid_alive(p_pid)
    # An unchanged, operator-stopped worker is not started by a reload.
    assert warden.status("a")["state"] == "STOPPED"
    warden.stop()


def test_reload_changed_settings_leave_an_operator_stopped_worker_stopped(warden):
    warden.start({"worker:a": worker("--print", "before"), "worker:b": worker()})
    warden.ctl("stop", "a")
    warden.wait_state("a", "STOPPED", STOP_TIMEOUT_MS / 1000 + MARGIN_S)
    warden.write_config({"worker:a": worker("--print", "after"), "worker:b": worker()})
    rep = warden.ctl("reload")
    assert rep["updated"] == ["a"] and rep["restarted"] == [], rep
    time.sleep(1.0)
    st = warden.status("a")
    assert st["state"] == "STOPPED" and st["desired"] == "down", st
    # The new settings are the ones its next start uses.
    warden.ctl("start", "a")
    warden.wait_state("a", "RUNNING", 10, ready=True)
    warden.wait_until(lambda: any("after" in l["line"] for l in warden.logs("a")), 5,
                      "a to run with the new command")
    warden.stop()


def test_reload_stops_a_removed_program_even_in_the_middle_of_a_restart(warden):
    warden.start({"worker:a": worker("--slow-stop", 1500), "worker:b": worker()})
    a_pid = warden.status("a")["pid"]
    warden.ctl("restart", "a")
    warden.wait_state("a", "STOPPING", 5)
    warden.write_config({"worker:b": worker()})
    assert warden.ctl("reload")["removed"] == ["a"]
    warden.wait_for(lambda s: "a" not in s, STOP_TIMEOUT_MS / 1000 + 2 * MARGIN_S, "a removed")
    assert not pid_alive(a_pid)
    # A removed program is no longer a target, even while it stops.
    assert warden.ctl("start", "a", json=False, check=False).rc == 1
    warden.stop()


def test_reload_restarts_a_worker_whose_own_section_changed(warden):
    """[aggregator] is read by the aggregator itself at start: changing it
    restarts that worker (and only it); a changed section no program is
    named after is reported, not silently ignored."""
    def conf(rate, breaker_failures):
        return {"worker:aggregator": worker(command=str(BIN_DIR / "warden-aggregator")),
                "worker:b": worker(),
                "aggregator": {"symbols": "AAPL", "venues": "A", "source": "synthetic",
                               "synthetic_rate": rate, "redis_url": "redis://127.0.0.1:1/0"},
                "breaker:sink": {"failure_threshold": breaker_failures}}
    warden.start(conf("10", "5"))
    before = warden.status()
    warden.write_config(conf("20", "5"))
    rep = warden.ctl("reload")
    assert rep["restarted"] == ["aggregator"] and rep["not_applied"] == [], rep
    assert sorted(rep["unchanged"]) == ["b"], rep
    warden.wait_for(lambda s: s["aggregator"]["pid"] not in (None, before["aggregator"]["pid"])
                    and s["aggregator"]["ready"], STOP_TIMEOUT_MS / 1000 + 2 * MARGIN_S,
                    "the aggregator to restart")
    assert warden.status("b")["pid"] == before["b"]["pid"]
    warden.write_config(conf("20", "7"))
    rep = warden.ctl("reload")
    assert rep["restarted"] == [] and rep["not_applied"] == ["breaker:sink"], rep
    r = warden.ctl("reload", json=False)
    assert r.rc == 0 and "no changes" in r.out, r  # the same file again
    warden.stop()
