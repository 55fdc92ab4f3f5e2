"""warden-position-monitor against warden-paper-broker under the real warden,
with prices from a Python publisher of market data batches (the
aggregator's side of marketdata.sock) and positions in a private database
of the suite's PostgreSQL (a private cluster for the restart test, a
private Redis for the Redis-down test). Every fault of issue 5:

 - exits by rule, nonsense rows rejected with a logged reason, kill switch;
 - trailing stops: water marks follow the high, are persisted, and fire;
 - broker 500s: retries, the breaker opens, positions stay closing, and are
   completed once the broker is back; none closed twice;
 - broker 429 + Retry-After: no call during the pause;
 - kill -9 between the broker's fill and the final transaction: the
   restarted monitor reconciles, the order exists once;
 - PostgreSQL restarted: monitoring goes on, the exit is queued and
   completed after the reconnect, a row inserted while the monitor was
   disconnected is picked up by the reload;
 - Redis down: fallback fetches fail fast and are counted, evaluation goes
   on with live prices."""
import os
import time

import pytest

import pm_helpers as H
from wardenlib import BIN_DIR, FAST_WORKER, SOURCE_DIR, program

PM = BIN_DIR / "warden-position-monitor"
PB = BIN_DIR / "warden-paper-broker"
PG_DSN = os.environ.get("WARDEN_PG_DSN")
REDIS_URL = os.environ.get("WARDEN_REDIS_URL")
REDIS_PORT = int(os.environ.get("WARDEN_REDIS_PORT") or 0)

pytestmark = [
    pytest.mark.skipif(not (os.access(PM, os.X_OK) and os.access(PB, os.X_OK)),
                       reason="position monitor / paper broker not built"),
    pytest.mark.skipif(not (PG_DSN and REDIS_URL), reason="needs scripts/test's Redis and PostgreSQL"),
]


class Env:
    def __init__(self, warden, tmp_path, dsn=None, redis_url=None):
        self.warden = warden
        self.db = H.Database(PG_DSN) if dsn is None else None
        self.dsn = dsn or self.db.dsn
        self.port = H.free_port()
        self.broker = H.Broker(self.port)
        self.md = H.Publisher(tmp_path / "md.sock")
        self.redis_url = redis_url or REDIS_URL
        self.tag = "T%d" % (os.getpid() % 100000)  # symbols unique to this test run

    def sym(self, s):
        return self.tag + s

    def sections(self, **pm_keys):
        pm = {"dsn": self.dsn, "schema_file": SOURCE_DIR / "config" / "schema.sql",
              "redis_url": self.redis_url, "broker_url": self.broker.base,
              "marketdata_url": "ipc://" + self.md.path, "price_stale_after": "2s",
              "broker_breaker_failures": 3, "broker_breaker_open": "1s",
              "broker_breaker_open_max": "2s", "retry_base": "50ms", "retry_cap": "1s",
              "broker_min_interval": "10ms", "persist_interval": "100ms", "alerts": "no"}
        pm.update(pm_keys)
        w = {"command": str(PM)}
        w.update(FAST_WORKER)
        w["start_timeout"] = "10s"
        return {
            "program:broker": program("%s --listen 127.0.0.1:%d --redis-url %s --seed 1" %
                                      (PB, self.port, REDIS_URL)),
            "worker:pm": w,
            "position_monitor": pm,
        }

    def start(self, **pm_keys):
        self.warden.start(self.sections(**pm_keys))
        self.warden.wait_until(self.broker.up, 10, "the paper broker to listen")
        self.warden.wait_until(lambda: self.health()["loaded"], 15, "positions loaded")
        self.md.wait_subscriber()

    def ctl(self, *args):
        return self.warden.ctl("call", "pm", *args)

    def health(self):
        return self.ctl("health")

    def metrics(self):
        return self.ctl("metrics")

    def q(self, sql):
        return H.psql(self.dsn, sql)

    def insert(self, symbol, side="long", qty=10, entry=100, account="acct1", **cols):
        names = ["account", "symbol", "side", "quantity", "entry_price"] + list(cols)
        vals = ["'%s'" % account, "'%s'" % symbol, "'%s'" % side, str(qty), str(entry)]
        vals += ["'%s'" % v if isinstance(v, str) else str(v) for v in cols.values()]
        return int(self.q("INSERT INTO positions (%s) VALUES (%s) RETURNING id" %
                          (", ".join(names), ", ".join(vals)))[0][0])

    def status(self, pid):
        return self.q("SELECT status, coalesce(exit_reason, ''), coalesce(exit_price::text, ''), "
                      "coalesce(client_order_id, '') FROM positions WHERE id = %d" % pid)[0]

    def wait_status(self, pid, status, timeout=15):
        self.warden.wait_until(lambda: self.status(pid)[0] == status, timeout,
                               "position %d %s" % (pid, status))

    def wait_open(self, n, timeout=10):
        self.warden.wait_until(lambda: self.metrics()["positions"]["open"] == n, timeout,
                               "%d positions open" % n)

    def last(self, symbol, bid, ask):
        """Where the broker fills: md:last in the suite's Redis."""
        H.set_last(REDIS_PORT, symbol, bid, ask)

    def close(self):
        self.md.close()
        if self.db:
            self.db.close()


@pytest.fixture
def env(warden, tmp_path):
    e = Env(warden, tmp_path)
    yield e
    try:
        warden.stop()
    except Exception:
        pass
    e.close()


def once_each(env, coid):
    st = env.broker.stats()
    per = st["per_id"][coid]
    assert per["fills"] == 1, per
    assert st["max_fills_per_id"] == 1, st
    return per


def test_exits_rejections_and_kill_switch(env):
    a, b, c = env.sym("A"), env.sym("B"), env.sym("C")
    env.start()
    sl = env.insert(a, stop_loss=95, take_profit=110)
    tp = env.insert(a, side="short", entry=100, stop_loss=105, take_profit=96)
    bad_qty = env.insert(b, qty=-5)
    bad_stop = env.insert(b, stop_loss=105)  # a long's stop above its entry
    k1 = env.insert(c, account="kill-me")
    k2 = env.insert(c, account="kill-me")
    keep = env.insert(c, account="other")
    env.wait_open(5)
    m = env.metrics()
    assert m["rejected_rows"] == 2
    reasons = {r["id"]: r["reason"] for r in m["recent_rejections"]}
    assert "quantity -5 is not positive" in reasons[bad_qty]
    assert "stop_loss 105 at or above entry_price 100 for a long" in reasons[bad_stop]
    # ... and the reason is in the worker's log, where an operator looks.
    want = "position %d rejected: quantity -5 is not positive" % bad_qty
    env.warden.wait_until(
        lambda: any(want in l["line"] for l in env.warden.logs("pm", 1000)), 5,
        "the rejection in the position monitor's log")
    env.last(a, 94.9, 95.1)
    env.md.quotes([(a, 94.9, 95.1)])  # mid 95.0: the long's stop, the short's target
    env.wait_status(sl, "closed")
    env.wait_status(tp, "closed")
    st = env.status(sl)
    assert st[1] == "stop_loss" and float(st[2]) == 94.9 and st[3] == "wd-pm-%d" % sl
    assert env.status(tp)[1] == "take_profit" and float(env.status(tp)[2]) == 95.1
    # kill switch: one account only
    env.last(c, 99, 101)
    out = env.ctl("kill-switch", "account=kill-me", "reason=test")
    assert out["exiting"] == 2
    env.wait_status(k1, "closed")
    env.wait_status(k2, "closed")
    assert env.status(k1)[1] == "kill_switch"
    assert env.status(keep)[0] == "open"
    assert env.status(bad_qty)[0] == "open"  # rejected rows are left alone, not closed
    for pid in (sl, tp, k1, k2):
        once_each(env, "wd-pm-%d" % pid)
    m = env.metrics()
    assert m["exits_by_reason"]["stop_loss"] == 1
    assert m["exits_by_reason"]["kill_switch"] == 2
    prof = env.ctl("profile", "cycles=50")
    assert set(prof["phases"]) == {"prices", "evaluation", "actions", "persistence"}
    assert prof["cycles"] == 50


def test_trailing_stops_persist_water_marks_and_fire(env):
    """Trailing stops of one symbol share a water-mark epoch: a rise moves
    every mark (written in batches, in the row), a fall fires exactly the
    ones whose trail it reaches, and a short trails the low."""
    t = env.sym("TR")
    env.start()
    tight = env.insert(t, trailing_kind="percent", trailing_stop=2)
    wide = env.insert(t, trailing_kind="percent", trailing_stop=20)
    absl = env.insert(t, trailing_kind="absolute", trailing_stop=3)
    short = env.insert(t, side="short", trailing_kind="absolute", trailing_stop=30)
    env.wait_open(4)
    for p in (101, 103, 107, 110):
        env.md.quotes([(t, p - 0.01, p + 0.01)])
        time.sleep(0.05)

    def marks():
        rows = env.q("SELECT id, water_mark FROM positions WHERE id IN (%d, %d, %d)" %
                     (tight, wide, absl))
        return {int(i): (float(w) if w else None) for i, w in rows}
    env.warden.wait_until(lambda: set(marks().values()) == {110.0}, 10,
                          "the water marks persisted at the high")
    # 2 % under 110 is 107.8, 3 under is 107, 20 % under is 88: 106.5 fires two.
    env.last(t, 106.49, 106.51)
    env.md.quotes([(t, 106.49, 106.51)])
    env.wait_status(tight, "closed")
    env.wait_status(absl, "closed")
    assert env.status(tight)[1] == "trailing_stop"
    assert env.status(absl)[1] == "trailing_stop"
    assert env.status(wide)[0] == "open"
    assert env.status(short)[0] == "open"  # its low is 100: 30 above is 130
    m = env.metrics()
    assert m["exits_by_reason"]["trailing_stop"] == 2
    assert m["positions"]["open"] == 2
    for pid in (tight, absl):
        once_each(env, "wd-pm-%d" % pid)


def test_broker_500s_breaker_then_completion(env):
    s = env.sym("E")
    env.start()
    ids = [env.insert(s, stop_loss=95) for _ in range(3)]
    env.wait_open(3)
    env.last(s, 90, 90.2)
    env.broker.faults(error_rate=1.0)
    env.md.quotes([(s, 90, 90.2)])
    env.warden.wait_until(lambda: env.metrics()["breakers"]["broker"] not in (None,) and
                          env.metrics()["breakers"]["broker"]["opens"] >= 1, 15,
                          "the broker breaker to open")
    st = env.broker.stats()
    assert st["injected_500"] >= 3 and st["orders"] == 0
    for pid in ids:
        assert env.status(pid)[0] == "closing"
    assert env.metrics()["positions"]["closing"] == 3
    env.broker.faults(error_rate=0.0)
    for pid in ids:
        env.wait_status(pid, "closed", timeout=20)
    st = env.broker.stats()
    assert st["orders"] == 3 and st["max_fills_per_id"] == 1
    for pid in ids:
        once_each(env, "wd-pm-%d" % pid)
    assert int(env.q("SELECT count(*) FROM positions WHERE status = 'closed'")[0][0]) == 3


def test_broker_429_retry_after_pauses_calls(env):
    s = env.sym("R")
    env.start()
    pid = env.insert(s, stop_loss=95)
    env.wait_open(1)
    env.last(s, 90, 90.2)
    env.broker.faults(rate_429=1.0, retry_after_s=2)
    env.md.quotes([(s, 90, 90.2)])

    def first_429():
        return [r for r in env.broker.stats()["recent"] if r["status"] == 429]
    env.warden.wait_until(first_429, 10, "a 429")
    env.broker.faults(rate_429=0.0)
    t429 = first_429()[0]["t"]
    env.wait_status(pid, "closed", timeout=15)
    later = [r for r in env.broker.stats()["recent"] if r["t"] > t429 and
             r["path"].startswith("/orders")]
    assert later, "no call after the 429"
    gap = later[0]["t"] - t429
    assert gap >= 2.0 - 0.05, "a call %.3fs after a 429 with Retry-After: 2" % gap
    once_each(env, "wd-pm-%d" % pid)


def test_kill9_between_broker_and_final_write(env):
    s = env.sym("K")
    env.start(test_crash_after_broker="yes")
    pid = env.insert(s, stop_loss=95)
    env.wait_open(1)
    first = env.warden.status("pm")["pid"]
    env.last(s, 90, 90.2)
    env.md.quotes([(s, 90, 90.2)])
    env.warden.wait_new_pid("pm", first, 15)
    env.wait_status(pid, "closed", timeout=20)
    per = once_each(env, "wd-pm-%d" % pid)
    assert per["posts"] == 1, per   # placed once, before the crash
    assert per["gets"] >= 1, per    # reconciled after the restart
    assert float(env.status(pid)[2]) == 90


def test_postgres_restart_mid_run(warden, tmp_path):
    pg = H.PrivatePostgres()
    e = Env(warden, tmp_path, dsn=pg.dsn)
    try:
        s = e.sym("P")
        e.start()
        a = e.insert(s, stop_loss=95)
        e.wait_open(1)
        pg.stop()
        cycles = e.metrics()["cycle"]["count"]
        e.last(s, 94, 94.2)
        e.md.quotes([(s, 94, 94.2)])
        e.warden.wait_until(lambda: e.metrics()["exits_by_reason"]["stop_loss"] == 1, 10,
                            "the exit to fire with the database down")
        time.sleep(1)
        m = e.metrics()
        assert m["cycle"]["count"] > cycles  # monitoring goes on
        assert m["positions"]["exiting"] == 1  # queued for the database
        pg.start()
        b = e.insert(s, stop_loss=90)  # maybe before the monitor is back: the reload covers it
        e.wait_status(a, "closed", timeout=30)
        e.warden.wait_until(lambda: e.metrics()["positions"]["open"] == 1, 20, "b loaded")
        e.last(s, 89, 89.2)
        e.md.quotes([(s, 89, 89.2)])
        e.wait_status(b, "closed", timeout=15)
        once_each(e, "wd-pm-%d" % a)
        once_each(e, "wd-pm-%d" % b)
    finally:
        try:
            warden.stop()
        except Exception:
            pass
        e.close()
        pg.close()


def test_redis_down_fails_fast_and_evaluation_goes_on(warden, tmp_path):
    rd = H.PrivateRedis()
    e = Env(warden, tmp_path, redis_url=rd.url)
    try:
        live, stale = e.sym("L"), e.sym("S")
        e.start(price_stale_after="500ms")
        p1 = e.insert(live, stop_loss=95)
        p2 = e.insert(stale, stop_loss=95)
        e.wait_open(2)
        # The stale symbol's price comes from the (private) Redis fallback.
        H.set_last(rd.port, stale, 100, 100.2)
        e.warden.wait_until(lambda: e.metrics()["totals"]["redis_fetches_ok"] >= 1, 10,
                            "a fallback fetch")
        rd.kill()
        before = e.metrics()["totals"]
        time.sleep(2)
        after = e.metrics()["totals"]
        assert after["redis_fetches_error"] > before["redis_fetches_error"]
        assert after["symbols_skipped"] > before["symbols_skipped"]
        e.last(live, 90, 90.2)
        e.md.quotes([(live, 90, 90.2)])
        e.wait_status(p1, "closed")
        assert e.status(p2)[0] == "open"  # never evaluated on its old price
        m = e.metrics()
        assert m["cycle"]["max_ms"] < 250, m["cycle"]  # the fallback never blocks a cycle
        once_each(e, "wd-pm-%d" % p1)
    finally:
        try:
            warden.stop()
        except Exception:
            pass
        e.close()
        rd.close()
