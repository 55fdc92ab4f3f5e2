"""warden-aggregator under the real warden: a replay file with bad lines
counted by reason and line number; a feed that stops (its venue goes stale
and leaves the consolidated quote, progress stalls); a private Redis killed
and restarted during a replay (publishing goes on, md:last:* is right again
soon after); the aggregator killed while reading a Redis stream (the
restarted worker resumes from the consumer group, nothing lost, no acked
tick read twice).

Quotes on marketdata.sock are read with sp.py's raw SUB client (nng's SUB
filter is local to the subscriber, so a raw client gets every message) and
decoded by hand against proto/PROTOCOL.md ("Market data")."""
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import msgpack
import pytest

import sp
from wardenlib import BIN_DIR, FAST_WORKER, MARGIN_S

AGG = BIN_DIR / "warden-aggregator"
T_MD_BATCH = 16
T0 = 1700000000 * 10**9

pytestmark = pytest.mark.skipif(not os.access(AGG, os.X_OK), reason="warden-aggregator not built")


def agg_sections(aggregator, **worker_keys):
    w = {"command": str(AGG)}
    w.update(FAST_WORKER)
    w.update(worker_keys)
    a = {"symbols": "AAPL,MSFT", "venues": "A,B,C", "bar_intervals": "1s"}
    a.update(aggregator)
    return {"worker:agg": w, "aggregator": a}


def stats(warden):
    return warden.ctl("call", "agg", "stats")


def decode_md(raw):
    """(topic, envelope) of one marketdata.sock message."""
    u = msgpack.Unpacker(io.BytesIO(raw), raw=False)
    topic = next(u)
    env = next(u)
    assert env[0] == 1 and env[1] == T_MD_BATCH, env[:3]
    return topic, env


def recv_quotes(warden, s, timeout=2):
    """The quotes of the next marketdata.sock message. A closed connection
    fails with what the aggregator was doing: its status and last log lines
    (a crash shows as a new pid, a listener restart in the log)."""
    try:
        return quotes_of(s.recv_raw(timeout))
    except sp.SPClosed:
        st = warden.status().get("agg")
        raise AssertionError("marketdata.sock closed the subscriber; agg status %r\n%s\n%s" % (
            st, "\n".join(str(x) for x in warden.logs("agg", 40)), warden.diag()))


def quotes_of(raw):
    topic, env = decode_md(raw)
    return [dict(zip(("symbol", "bid", "bid_size", "bid_venue", "ask", "ask_size", "ask_venue",
                      "mid", "spread", "flags", "n_venues", "ts_ns", "recv_ns"), q))
            for q in env[5][0]]


def sub(warden, timeout=5.0):
    url = "ipc://%s/marketdata.sock" % warden.run_dir
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sp.SPSocket(url, sp.PROTO_SUB, timeout=timeout)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("ts,venue,symbol,bid,bid_size,ask,ask_size,last,last_size\n")
        for r in rows:
            f.write(r + "\n")


# ---- replay with bad lines ----

def test_replay_bad_lines_counted_by_reason(warden, tmp_path):
    csv = tmp_path / "ticks.csv"
    write_csv(csv, [
        "1700000000.000,A,AAPL,100.0,10,100.4,5",         # 2
        "1700000000.100,B,AAPL,100.1,3,100.3,7,100.2,1",  # 3
        "this is not a tick",                             # 4 malformed
        "1700000000.200,ZZ,AAPL,1,1,2,2",                 # 5 unknown venue
        "1700000000.300,A,AAPL,-1,1,2,2",                 # 6 negative price
        "1700000000.400,C,AAPL,5,1,4,2",                  # 7 bid > ask on one venue
        "1700000000.500,A,NOPE,1,1,2,2",                  # 8 symbol not in the list
        "yesterday,A,AAPL,1,1,2,2",                       # 9 bad timestamp
        "1700000000.600,C,MSFT,50,1,50.5,2",              # 10
    ])
    warden.start(agg_sections({"source": "replay", "replay_file": csv, "replay_speed": "0"}))
    st = warden.wait_until(lambda: (lambda s: s if s["replay"]["done"] else None)(stats(warden)),
                           10, "the replay to finish")
    d = st["dropped"]
    assert d["malformed"] == 1 and d["unknown_venue"] == 1 and d["negative_price"] == 1, d
    assert d["crossed_venue"] == 1 and d["bad_timestamp"] == 1 and d["unknown_symbol"] == 1, d
    bad = {(b["line"], b["reason"]) for b in st["bad_lines"]}
    assert bad == {(4, "malformed"), (5, "unknown_venue"), (6, "negative_price"),
                   (7, "crossed_venue"), (9, "bad_timestamp")}, bad
    assert st["replay"]["ticks"] == 4 and st["replay"]["bad"] == 5, st["replay"]
    # The good lines went through: the best of A and B.
    q = warden.ctl("call", "agg", "quote", "symbol=AAPL")
    assert (q["bid"], q["bid_venue"], q["ask"], q["ask_venue"]) == (100.1, "B", 100.3, "B"), q
    assert q["n_venues"] == 2
    # Bad lines were logged with their line number.
    log = "\n".join(l["line"] for l in warden.logs("agg", 200))
    assert "ticks.csv:7: bad line (crossed_venue)" in log, log
    assert warden.status("agg")["state"] == "RUNNING"
    warden.stop()


# ---- a feed that stops ----

def test_feed_stops_venue_goes_stale_and_progress_stalls(warden, tmp_path):
    rows = []
    for i in range(30):  # 3 s of A every 100 ms; B only in the first 0.5 s
        ts = "%d.%03d" % (1700000000 + i // 10, (i % 10) * 100)
        rows.append("%s,A,AAPL,100.0,10,100.4,5" % ts)
        if i < 5:
            rows.append("%s,B,AAPL,100.1,3,100.3,7" % ts)
    csv = tmp_path / "feed.csv"
    write_csv(csv, rows)
    warden.start(agg_sections({"source": "replay", "replay_file": csv, "replay_speed": "1",
                               "venue_stale_after": "500ms"}))
    s = sub(warden)
    try:
        # Soon both venues are in; B's best bid leads.
        q = warden.wait_until(lambda: (lambda r: r if r.get("n_venues") == 2 else None)(
            warden.ctl("call", "agg", "quote", "symbol=AAPL", check=False)), 5, "two venues")
        assert q["bid_venue"] == "B"
        # B stops: after venue_stale_after it leaves the quote.
        q = warden.wait_until(lambda: (lambda r: r if r.get("n_venues") == 1 else None)(
            warden.ctl("call", "agg", "quote", "symbol=AAPL")), 3, "B to go stale")
        assert (q["bid"], q["bid_venue"], q["ask_venue"]) == (100.0, "A", "A"), q
        assert q["venues"]["B"]["present"] is False
        # Subscribers saw it too: a published quote with only A.
        seen = None
        deadline = time.monotonic() + 3
        while seen is None and time.monotonic() < deadline:
            for qq in quotes_of(s.recv_raw(3)):
                if qq["symbol"] == "AAPL" and qq["n_venues"] == 1:
                    seen = qq
        assert seen and seen["bid_venue"] == "A", seen
    finally:
        s.close()
    # The whole feed stops at the end of the file: progress stalls, the
    # worker stays RUNNING (alive, not dead).
    warden.wait_until(lambda: stats(warden)["replay"]["done"], 6, "the replay to end")
    p1 = warden.status("agg")["progress"]
    time.sleep(1.0)
    a = warden.status("agg")
    assert a["progress"] == p1 and a["state"] == "RUNNING", a
    assert p1 == 35
    stale = a["metrics"].get('warden_agg_venue_staleness_seconds{venue="B"}')
    assert stale is not None and stale > 1.0, a["metrics"]
    warden.stop()


# ---- Redis ----

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, which it may kill."""

    def __init__(self, port):
        self.port = port
        self.dir = tempfile.mkdtemp(prefix="agg-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            assert time.monotonic() < deadline, "private redis did not start"
            time.sleep(0.05)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cli(self, *args, stdin=None):
        r = subprocess.run(["redis-cli", "-p", str(self.port)] + [str(a) for a in args],
                           input=stdin, capture_output=True, text=True, timeout=20)
        return r.stdout.strip()

    def close(self):
        if self.proc and self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_private():
    r = PrivateRedis(free_port())
    r.start()
    yield r
    r.close()


def test_redis_killed_and_restarted_during_replay(warden, tmp_path, redis_private):
    rows = []
    for i in range(3000):  # 15 s at original pace, a tick every 5 ms
        ns = T0 + i * 5 * 10**6
        px = 100 + (i % 50) / 100.0
        rows.append("%d,A,AAPL,%.2f,1,%.2f,1" % (ns, px, px + 0.5))
        rows.append("%d,B,MSFT,%.2f,1,%.2f,1" % (ns, px, px + 0.25))
    csv = tmp_path / "long.csv"
    write_csv(csv, rows)
    url = "redis://127.0.0.1:%d" % redis_private.port
    warden.start(agg_sections({"source": "replay", "replay_file": csv, "replay_speed": "1",
                               "redis_url": url}))
    pid = warden.status("agg")["pid"]
    warden.wait_until(lambda: redis_private.cli("HGET", "md:last:AAPL", "bid"), 5,
                      "md:last:AAPL in Redis")
    s = sub(warden)
    try:
        redis_private.kill()
        t_kill = time.monotonic()
        # While Redis is gone, quotes keep coming on nng.
        got = 0
        while time.monotonic() - t_kill < 2.0:
            got += len(recv_quotes(warden, s))
        assert got > 50, got
        st = stats(warden)["redis"]
        assert st["sink_state"] != "ready", st
        redis_private.start()
        t_back = time.monotonic()
        got = 0
        while time.monotonic() - t_back < 0.5:
            got += len(recv_quotes(warden, s))
        assert got > 10, got
    finally:
        s.close()

    # md:last:* correct again within a few seconds: equal to the aggregator's
    # own current quote (the replay is still running, so compare a snapshot
    # taken after pausing reads is impossible; allow the latest tick or so).
    def redis_matches():
        q = warden.ctl("call", "agg", "quote", "symbol=MSFT")
        b = redis_private.cli("HGET", "md:last:MSFT", "bid")
        return b and abs(float(b) - q["bid"]) <= 0.02
    warden.wait_until(redis_matches, 15, "md:last:MSFT to match the aggregator")
    assert time.monotonic() - t_back < 10 + MARGIN_S  # a few seconds; generous for a loaded CI machine
    a = warden.status("agg")
    assert a["pid"] == pid and a["state"] == "RUNNING", a
    st = stats(warden)["redis"]
    assert st["skipped"] > 0 and st["sink_state"] == "ready", st
    assert a["metrics"]["warden_agg_redis_skipped_total"] > 0
    warden.stop()


def test_killed_mid_stream_resumes_from_group(warden, redis_private):
    stream = "md:ticks"

    def xadd(first, n):
        cmds = "".join("XADD %s * ts %d venue A symbol AAPL bid %d bid_size 1 ask %d ask_size 1\n"
                       % (stream, T0 + i, 100 + i, 101 + i) for i in range(first, first + n))
        redis_private.cli(stdin=cmds)

    def group_info():
        out = redis_private.cli("XPENDING", stream, "aggregator").split("\n")
        return int(out[0]) if out and out[0].isdigit() else -1

    url = "redis://127.0.0.1:%d" % redis_private.port
    xadd(0, 300)  # before the first start: read too (group created at 0)
    warden.start(agg_sections({"source": "redis", "redis_url": url, "redis_sink": "no",
                               "redis_read_count": "50"}))
    warden.wait_until(lambda: stats(warden)["ticks_in"]["redis"]["A"] == 300, 10, "300 ticks")
    xadd(300, 200)
    warden.wait_until(lambda: stats(warden)["ticks_in"]["redis"]["A"] == 500, 10, "500 ticks")
    warden.wait_until(lambda: group_info() == 0, 5, "every entry acked")
    old = warden.status("agg")["pid"]
    os.kill(old, signal.SIGKILL)
    xadd(500, 250)  # while it is down
    new = warden.wait_new_pid("agg", old, 10 + MARGIN_S)
    assert new["restarts"] == 1
    # The new process reads exactly the 250 entries it has not seen: none of
    # the 500 acked ones again, none lost.
    warden.wait_until(lambda: stats(warden)["ticks_in"]["redis"]["A"] >= 250, 10, "250 ticks")
    time.sleep(1.0)
    st = stats(warden)
    assert st["ticks_in"]["redis"]["A"] == 250, st["ticks_in"]
    assert st["redis"]["source_entries"] == 250 and st["redis"]["source_acked"] == 250, st["redis"]
    assert group_info() == 0
    q = warden.ctl("call", "agg", "quote", "symbol=AAPL")
    assert q["bid"] == 100 + 749, q  # the newest entry is the quote
    warden.stop()


def test_redis_breakers_reachable_and_resettable(warden, redis_private):
    """Every breaker the aggregator reports in its heartbeat is one it
    registered: `breakers` lists it and `breaker-reset` finds it (it was
    only reported, so `breakers` said [] and a reset 'no breaker named').
    The client and its breaker have one name, and the name's first word is
    the dependency (what wardenctl diagnose reads)."""
    url = "redis://127.0.0.1:%d" % redis_private.port
    warden.start(agg_sections({"source": "synthetic", "synthetic_rate": "200",
                               "redis_url": url}))
    warden.wait_until(lambda: redis_private.cli("HGET", "md:last:AAPL", "bid"), 5,
                      "md:last:AAPL in Redis")
    warden.wait_until(lambda: warden.status("agg").get("breakers"), 5, "breakers in heartbeat")
    reported = {b["name"] for b in warden.status("agg")["breakers"]}
    assert "redis-sink" in reported, reported
    listed = {b["name"]: b for b in warden.ctl("call", "agg", "breakers")["breakers"]}
    assert reported <= set(listed), (reported, listed)
    assert listed["redis-sink"]["state"] == "closed", listed["redis-sink"]
    # The client's metrics carry the same name as its breaker.
    samples = warden.status("agg")["metrics"]
    assert any('client="redis-sink"' in k for k in samples), sorted(samples)[:40]
    # Found, but closed: nothing to reset (not "no breaker named").
    r = warden.ctl("call", "agg", "breaker-reset", "name=redis-sink", "reason=test",
                   "override=true", json=False)
    assert r.rc != 0 and "not open" in r.err, r

    # Redis frozen: writes time out, the connection is dropped, the breaker
    # opens; an operator's reset reaches the very breaker the sink consults.
    os.kill(redis_private.proc.pid, signal.SIGSTOP)
    try:
        def sink_open():
            b = {b["name"]: b for b in warden.ctl("call", "agg", "breakers")["breakers"]}
            return b["redis-sink"]["state"] in ("open", "half_open")
        warden.wait_until(sink_open, 10 + MARGIN_S, "redis-sink breaker open")
        # Heartbeats show it too (up to one heartbeat later than the call).
        warden.wait_until(lambda: {b["name"]: b["state"] for b in warden.status("agg")["breakers"]}
                          ["redis-sink"] != "closed", 5, "redis-sink open in the heartbeat")
        res = warden.ctl("call", "agg", "breaker-reset", "name=redis-sink",
                         "reason=redis-frozen-test", "override=true")
        assert res["name"] == "redis-sink" and res["to"] == "closed", res
        warden.wait_until(lambda: any("audit: breaker 'redis-sink' reset" in x["line"]
                                      for x in warden.logs("agg", 200)), 5, "the audit line")
    finally:
        os.kill(redis_private.proc.pid, signal.SIGCONT)
    # Back: the sink writes again (md:last:* follows the aggregator).
    redis_private.cli("DEL", "md:last:AAPL")
    warden.wait_until(lambda: redis_private.cli("HGET", "md:last:AAPL", "bid"), 10 + MARGIN_S,
                      "md:last:AAPL written again")
    assert warden.status("agg")["state"] == "RUNNING"
    warden.stop()
