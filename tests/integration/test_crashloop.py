"""Restart backoff and the crash-loop breaker: a worker that exits at once,
again and again, is restarted with growing (jittered) delays until the
breaker opens; then nothing runs until the cooldown, one half-open trial
start follows, and the breaker closes once a healthy run has lasted
min_uptime. `wardenctl reset` closes it early, with an audited reason."""
import json
import re
import time
from datetime import datetime

from wardenlib import MARGIN_S, tw, worker

BASE_MS = 100
CAP_MS = 800
FAILURES = 4
COOLDOWN_S = 2.0
MIN_UPTIME_S = 1.0


def ts(e):
    return datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()


def crashing(**over):
    keys = dict(backoff_base="%dms" % BASE_MS, backoff_cap="%dms" % CAP_MS,
                breaker_failures=FAILURES, breaker_window="60s",
                breaker_cooldown="%dms" % int(COOLDOWN_S * 1000), breaker_cooldown_max="60s",
                min_uptime="%dms" % int(MIN_UPTIME_S * 1000))
    keys.update(over)
    return worker("--exit-after", 0, "--exit-code", 3, **keys)


def breaker_events(evs, name):
    return [e for e in evs if e["kind"] == "breaker" and e["worker"] == name]


def test_backoff_grows_breaker_opens_halfopen_then_closes(warden):
    warden.start({"worker:crashy": crashing(), "worker:steady": worker()}, wait_running=False)

    # 1. Quick failures are retried after backoff delays until the breaker opens.
    st = warden.wait_for(lambda st: st["crashy"]["breaker"]["state"] == "open", 15,
                         "crashy's crash-loop breaker to open")
    w = st["crashy"]
    assert w["state"] == "BACKOFF" and w["pid"] is None, w
    assert w["breaker"]["opens"] == 1 and w["breaker"]["retry_in_s"] is not None
    assert 0 < w["breaker"]["retry_in_s"] <= COOLDOWN_S * 1.1 + 0.05, w["breaker"]
    assert "breaker open" in w["reason"], w["reason"]
    assert w["last_exit"] == "exit 3"

    evs = warden.events()
    tr = warden.transitions("crashy", evs)
    backoffs = [e for e in tr if e["to"] == "BACKOFF"]
    delays = []
    for e in backoffs:
        m = re.search(r"restart (\d+) in (\d+)ms", e["reason"])
        if m:
            delays.append((int(m.group(1)), int(m.group(2)), e))
    # Attempts 1..FAILURES-1 backed off, numbered in order; the last opened the breaker.
    assert [d[0] for d in delays] == list(range(1, FAILURES)), [e["reason"] for e in backoffs]
    for n, ms, _ in delays:
        # Full jitter: rand(0, min(cap, base * 2^(n-1))), so the bound doubles.
        assert 0 <= ms <= min(CAP_MS, BASE_MS * 2 ** (n - 1)), (n, ms)
    # Each delay was honoured: the next start came no earlier than announced.
    for n, ms, e in delays:
        nxt = next(x for x in tr if x["seq"] > e["seq"] and x["to"] == "STARTING")
        assert ts(nxt) - ts(e) >= ms / 1000.0 - 0.02, (n, ms, e, nxt)
    opened = breaker_events(evs, "crashy")
    assert [(e["from"], e["to"]) for e in opened] == [("closed", "open")], opened
    assert "exit 3" in opened[0]["reason"]

    # 2. While open: no start at all (window shorter than what is left of the cooldown).
    restarts = w["restarts"]
    window = min(1.2, w["breaker"]["retry_in_s"] - 0.3)
    assert window > 0.3, w["breaker"]
    t_end = time.monotonic() + window
    while time.monotonic() < t_end:
        x = warden.status("crashy")
        assert x["pid"] is None and x["restarts"] == restarts and x["state"] == "BACKOFF", x
        time.sleep(0.1)

    # 3. After the cooldown: one half-open start; it fails, so the breaker
    # opens again with a longer cooldown.
    st = warden.wait_for(lambda st: st["crashy"]["breaker"]["opens"] >= 2,
                         COOLDOWN_S * 1.1 + MARGIN_S, "the half-open trial to fail and re-open")
    evs = warden.events()
    brk = breaker_events(evs, "crashy")
    assert [(e["from"], e["to"]) for e in brk] == [
        ("closed", "open"), ("open", "half_open"), ("half_open", "open")], brk
    trial = [e for e in warden.transitions("crashy", evs)
             if brk[1]["seq"] < e["seq"] < brk[2]["seq"] and e["to"] == "STARTING"]
    assert len(trial) == 1, trial
    # The half-open start came only after the cooldown.
    assert ts(brk[1]) - ts(opened[0]) >= COOLDOWN_S * 0.9 - 0.05
    retry2 = st["crashy"]["breaker"]["retry_in_s"]
    assert retry2 is not None and retry2 > COOLDOWN_S * 1.1, st["crashy"]["breaker"]

    # 4. Made healthy by a reload: the next (half-open) start stays up; the
    # breaker closes only after min_uptime of READY.
    cfg = warden.config.read_text()
    cfg = cfg.replace(tw("--exit-after", 0, "--exit-code", 3), tw("--print", "healthy now"))
    warden.write_raw_config(cfg)
    rep = warden.ctl("reload")
    assert rep["restarted"] == ["crashy"], rep
    # Still open: a reload does not bypass the breaker.
    time.sleep(0.3)
    x = warden.status("crashy")
    assert x["breaker"]["state"] == "open" and x["pid"] is None, x
    warden.wait_state("crashy", "RUNNING", retry2 + MARGIN_S, ready=True)
    w = warden.wait_for(lambda st: st["crashy"]["breaker"]["state"] == "closed",
                        MIN_UPTIME_S + MARGIN_S, "the breaker to close after min_uptime")["crashy"]
    evs = warden.events()
    brk = breaker_events(evs, "crashy")
    assert [(e["from"], e["to"]) for e in brk[-2:]] == [("open", "half_open"), ("half_open", "closed")]
    running = [e for e in warden.transitions("crashy", evs) if e["to"] == "RUNNING"][-1]
    assert ts(brk[-1]) - ts(running) >= MIN_UPTIME_S - 0.05, (running, brk[-1])
    assert w["state"] == "RUNNING" and w["pid"] is not None
    assert warden.status("steady")["restarts"] == 0
    warden.stop()


def test_reset_closes_breaker_early_with_audited_reason(warden):
    warden.start({"worker:crashy": crashing(breaker_cooldown="60s")}, wait_running=False)
    w = warden.wait_for(lambda st: st["crashy"]["breaker"]["state"] == "open", 15,
                        "the breaker to open")["crashy"]
    assert w["breaker"]["retry_in_s"] > 50

    # Without --reason: a usage error, nothing changes.
    r = warden.ctl("reset", "crashy", json=False)
    assert r.rc == 2, r
    assert "reason" in r.err
    assert warden.status("crashy")["breaker"]["state"] == "open"

    restarts = warden.status("crashy")["restarts"]
    t0 = time.monotonic()
    out = warden.ctl("reset", "crashy", "--reason", "fixed the config by hand")
    assert out == {"breaker": "closed"}
    # A start follows at once, long before the 60 s cooldown.
    warden.wait_for(lambda st: st["crashy"]["restarts"] > restarts, 3, "a start after reset")
    assert time.monotonic() - t0 < 3

    audit = (warden.run_dir / "audit.log").read_text().splitlines()
    recs = [json.loads(line) for line in audit]
    resets = [r for r in recs if r["action"] == "reset"]
    assert len(resets) == 1, recs
    assert resets[0]["worker"] == "crashy"
    assert resets[0]["reason"] == "fixed the config by hand"
    assert "ts" in resets[0]
    evs = warden.events()
    assert any(e["kind"] == "audit" and e["worker"] == "crashy" and
               e["reason"] == "fixed the config by hand" for e in evs)
    assert any(e["kind"] == "breaker" and e["to"] == "closed" and
               "fixed the config by hand" in e["reason"] for e in evs)
    # Unknown worker: exit 1 with a message.
    r = warden.ctl("reset", "nosuch", "--reason", "x", json=False)
    assert r.rc == 1 and "nosuch" in r.err
    warden.stop()
