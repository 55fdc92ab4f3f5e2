"""warden-paper-broker's Redis price source, with a private redis-server of
the test's own (frozen with SIGSTOP, never the suite's shared one):

 - Redis frozen long enough for the broker's breaker to open, then
   continued: orders are served again within a few seconds (the breaker's
   seed cooldown of 60 s, growing x2, kept them refused for a minute or
   more after Redis was back), run as a [program:] as in config/demo.conf;
 - run as a [worker:], its breaker `redis-prices` is in the heartbeat,
   `wardenctl call NAME breakers` lists it and `breaker-reset` reaches it;
   `stats` answers; SIGTERM stops it cleanly; bad flags still exit 2."""
import os
import signal
import subprocess
import threading
import time

import pytest

import pm_helpers as H
from wardenlib import BIN_DIR, FAST_WORKER, MARGIN_S, program

PB = BIN_DIR / "warden-paper-broker"
SYM = "PBT%d" % (os.getpid() % 100000)
BACK_WITHIN_S = 5.0  # Redis answering -> orders filled again

pytestmark = pytest.mark.skipif(not os.access(PB, os.X_OK), reason="paper broker not built")


@pytest.fixture
def redis():
    r = H.PrivateRedis()
    yield r
    if r.proc.poll() is None:
        os.kill(r.proc.pid, signal.SIGCONT)
    r.close()


class Frozen:
    """SIGSTOP on enter, SIGCONT on exit (also when the test fails)."""

    def __init__(self, redis):
        self.pid = redis.proc.pid

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


_seq = [0]


def order(broker, timeout=5):
    _seq[0] += 1
    coid = "pbt-%d-%d-%d" % (os.getpid(), int(time.time()), _seq[0])
    try:
        return broker.call("POST", "/orders", {"client_order_id": coid, "symbol": SYM,
                                               "side": "buy", "quantity": 1, "type": "market"},
                           timeout=timeout)
    except OSError as e:  # a client timeout: the broker did not answer in time
        return None, str(e)


def broker_cmd(port, redis_url):
    return "%s --listen 127.0.0.1:%d --redis-url %s --seed 1" % (PB, port, redis_url)


def hammer_while_frozen(broker, seconds):
    """Orders from 4 clients at once while Redis is frozen: every answer must
    be a 503 (nothing placed, retry), and enough of them fail for the
    breaker to open. Returns the statuses seen."""
    seen, lock = [], threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        while time.monotonic() < stop:
            st, _ = order(broker, timeout=5)
            with lock:
                seen.append(st)
            time.sleep(0.05)
    ts = [threading.Thread(target=client) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return seen


def wait_served(warden, broker, t_back):
    """Polls POST /orders until one is filled; the seconds it took."""
    last = None
    while time.monotonic() - t_back < BACK_WITHIN_S + MARGIN_S + 60:
        st, body = order(broker, timeout=5)
        if st == 201:
            return time.monotonic() - t_back
        last = (st, body)
        time.sleep(0.1)
    raise AssertionError("orders still refused %.0f s after Redis came back: %r" % (
        time.monotonic() - t_back, last))


def test_orders_served_again_soon_after_redis_returns(warden, redis):
    H.set_last(redis.port, SYM, 100.0, 100.5)
    port = H.free_port()
    broker = H.Broker(port)
    warden.start({"program:broker": program(broker_cmd(port, redis.url))})
    warden.wait_until(broker.up, 10, "the paper broker to listen")
    assert order(broker)[0] == 201

    with Frozen(redis):
        seen = hammer_while_frozen(broker, 6.0)
    t_back = time.monotonic()
    assert seen and set(seen) == {503}, seen

    took = wait_served(warden, broker, t_back)
    print("served again %.2f s after Redis continued" % took)
    assert took < BACK_WITHIN_S + MARGIN_S, "orders refused for %.1f s after Redis was back" % took
    # The breaker did open (the outage was long enough to matter), and the
    # broker logged it: visible without the worker runtime, in GET /stats.
    brk = broker.stats()["price_breaker"]
    assert brk["name"] == "redis-prices" and brk["opens"] >= 1, brk
    assert brk["state"] == "closed" and brk["connection"] == "ready", brk
    lines = [x["line"] for x in warden.logs("broker", 300)]
    assert any("breaker redis-prices: closed -> open" in ln for ln in lines), lines[-30:]
    warden.stop()


def test_breaker_visible_and_resettable_as_worker(warden, redis):
    H.set_last(redis.port, SYM, 100.0, 100.5)
    port = H.free_port()
    broker = H.Broker(port)
    w = {"command": broker_cmd(port, redis.url)}
    w.update(FAST_WORKER)
    warden.start({"worker:pb": w})
    warden.wait_until(broker.up, 10, "the paper broker to listen")
    warden.wait_until(lambda: warden.status("pb").get("breakers"), 5, "breakers in heartbeat")
    assert {b["name"]: b["state"] for b in warden.status("pb")["breakers"]} == \
        {"redis-prices": "closed"}
    listed = warden.ctl("call", "pb", "breakers")["breakers"]
    assert [b["name"] for b in listed] == ["redis-prices"], listed
    assert order(broker)[0] == 201
    assert warden.ctl("call", "pb", "stats")["filled"] == 1

    with Frozen(redis):
        def opened():
            order(broker, timeout=3)
            b = warden.ctl("call", "pb", "breakers")["breakers"][0]
            return b["state"] in ("open", "half_open")
        warden.wait_until(opened, 15 + MARGIN_S, "redis-prices open")
        warden.wait_until(lambda: warden.status("pb")["breakers"][0]["state"] != "closed", 5,
                          "redis-prices open in the heartbeat")
        # An operator's reset reaches it (refused without override: recent).
        r = warden.ctl("call", "pb", "breaker-reset", "name=redis-prices", "reason=t",
                       json=False)
        assert r.rc != 0 and "recent" in r.err, r
        res = warden.ctl("call", "pb", "breaker-reset", "name=redis-prices",
                         "reason=test-reset", "override=true")
        assert res["name"] == "redis-prices" and res["to"] == "closed", res
    t_back = time.monotonic()
    assert wait_served(warden, broker, t_back) < BACK_WITHIN_S + MARGIN_S
    warden.wait_until(lambda: warden.status("pb")["metrics"].get(
        "warden_broker_orders_filled_total", 0) >= 2, 5, "the fill counted in the heartbeat")
    assert warden.status("pb")["state"] == "RUNNING"
    warden.stop()


def test_bad_flags_exit_2():
    for argv in (["--listen"], ["--error-rate", "2"], ["--nope", "1"]):
        r = subprocess.run([str(PB)] + argv, capture_output=True, timeout=10,
                           stdin=subprocess.DEVNULL)
        assert r.returncode == 2, (argv, r)
