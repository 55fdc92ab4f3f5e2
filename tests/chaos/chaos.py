"""The chaos run (issue 8): the end-to-end load of tests/integration/
e2e_system.py -- ticks XADDed to a Redis stream that the aggregator reads
with its consumer group, positions in PostgreSQL whose symbols walk past
known stops, exits through the paper broker, exit alerts through the
notifier to a counting webhook sink -- while a seeded random schedule
injects faults, one kind at a time:

  kill9        kill -9 a worker
  stop         kill -STOP a worker for longer than its heartbeat timeout, then CONT
  redis        restart redis-server (SIGTERM; AOF with appendfsync always, so
               nothing acked is lost, as with a production Redis)
  postgres     restart the private PostgreSQL cluster (pg_ctl stop -m fast / start)
  broker       the paper broker's error, 429 or hang rate on, then off
  sink         the webhook sink fails (500) or hangs, then recovers
  reload       `wardenctl reload` after changing one worker's setting

Faults come at CHAOS_RATE per minute (exponential gaps) but never overlap:
the next one waits until the system has recovered from the last (unless
overlap=True), so each time-to-recovery is the fault's own. After
CHAOS_DURATION seconds the faults stop, everything is switched back on,
and the run settles; then check() asserts what the issue asks and
summary() prints what happened. CHAOS_SEED replays a run's schedule
(fault kinds, targets, durations and the price paths; timings on a loaded
machine still vary).

Exact tick accounting: the aggregator's counters live in its process and
die with it. So before a fault that ends an aggregator (kill, stop,
reload) the producer pauses, the stream is drained (nothing pending, no
lag) and that incarnation's stats are read; the producer resumes once its
replacement is READY. Faults that leave the aggregator running (Redis
restarts in particular) get no such help.
"""
import collections
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import e2e_system as E  # noqa: E402
from wardenlib import HB_TIMEOUT_MS, pid_alive, rss_kb  # noqa: E402

KINDS = ("kill9", "stop", "redis", "postgres", "broker", "sink", "reload")
STREAM, GROUP = "md:ticks", "aggregator"
PM_SENDER = "position_monitor-"  # alert ids of the monitor's outbox start with its name
# Breakers in front of a fallback only: the position monitor's Redis is read
# only for symbols whose market data went stale. Its breaker stays open for
# the default open time (60 s: [breaker:NAME] settings are not applied by the
# workers) after Redis is back, while the monitor does its job on live
# prices, so it does not count against recovery (its openings are counted).
RSS_MARGIN_KB = 2048
RSS_SLOPE_KB_MIN = 64
FD_MARGIN = 2
# An aggregator RUNNING and READY whose stats calls all fail for this long.
AGG_CALL_FAIL_S = 5.0
FD_PER_LSN_RESTART = 8  # seen: +6 and +7 after one restart of events.sock
FALLBACK_BREAKERS = {("position_monitor", "pm_redis")}
ALERT_LOG_RE = re.compile(r"alert channel='log' id='([^']+)'([^\n]*)")
ALERT_KIND_RE = re.compile(r"label\.kind='(\w+)'")
LSN_RESTART_RE = re.compile(r"^(?:\S+ (\w+)\[\d+\] stderr: )?[^\n]*restarting the listener",
                            re.M)  # no worker prefix: the supervisor's own line


def unix_paths():
    """inode -> path of the named unix sockets (/proc/net/unix)."""
    out = {}
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) >= 8:
                    out[parts[6]] = parts[7]
    except OSError:
        pass
    return out


def fd_table(pid):
    """fd -> what it is ("socket:[inode] /path", "pipe:[...]", a file)."""
    paths = unix_paths()
    table = {}
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            what = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if what.startswith("socket:["):
            what += " " + paths.get(what[8:-1], "(unnamed)")
        table[int(fd)] = what
    return table


def fd_kind(what):
    """A descriptor's kind: the socket file's name, "pipe", "pidfd", a path."""
    if what.startswith("socket:["):
        return "socket " + what.split(" ", 1)[1].rsplit("/", 1)[-1]
    if what.startswith("pipe:"):
        return "pipe"
    if what.startswith("anon_inode:"):
        return what[len("anon_inode:"):].strip("[]")
    return what


def fd_diff(before, after):
    """Descriptor counts by kind that changed from before to after."""
    if before is None or after is None:
        return "(no table)"
    b = collections.Counter(fd_kind(w) for w in before.values())
    a = collections.Counter(fd_kind(w) for w in after.values())
    ch = ["%s %d -> %d" % (k, b[k], a[k]) for k in sorted(set(a) | set(b)) if a[k] != b[k]]
    return ", ".join(ch) or "(same kinds and counts)"


def env_float(name, default):
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


class Settings:
    def __init__(self, duration=None, rate=None, seed=None, settle=None, symbols=None,
                 overlap=None):
        self.duration = duration if duration is not None else env_float("CHAOS_DURATION", 100)
        self.rate = rate if rate is not None else env_float("CHAOS_RATE", 20)  # faults per minute
        s = seed if seed is not None else os.environ.get("CHAOS_SEED")
        self.seed = int(s) if s not in (None, "") else random.SystemRandom().randrange(1, 10**9)
        self.settle = settle if settle is not None else env_float("CHAOS_SETTLE", 60)
        self.symbols = int(symbols if symbols is not None else env_float("CHAOS_SYMBOLS", 8))
        self.overlap = bool(overlap if overlap is not None else int(env_float("CHAOS_OVERLAP", 0)))
        kinds = os.environ.get("CHAOS_KINDS")
        self.kinds = tuple(k for k in kinds.split(",") if k) if kinds else KINDS
        bad = set(self.kinds) - set(KINDS)
        if bad:
            raise ValueError("CHAOS_KINDS: unknown fault kind(s) %s (known: %s)" % (
                ", ".join(sorted(bad)), ", ".join(KINDS)))


class PricePath:
    """Per symbol: a direction and a number of 1.0 steps away from 100,
    taken at even intervals over the first 70 % of the run. Long positions
    (down symbols) / shorts (up symbols) have stops at 0.5, 1.5, ... away
    from 100: a position crosses iff its stop is within the final move.
    Two far positions per symbol never cross."""

    LEVELS = 6

    def __init__(self, rng, symbols, duration):
        self.syms = ["C%d" % i for i in range(symbols)]
        self.dir = {s: rng.choice((-1, 1)) for s in self.syms}
        self.steps = {s: rng.randint(0, self.LEVELS) for s in self.syms}
        self.step_s = max(2.0, 0.7 * duration / self.LEVELS)

    def price(self, s, t):
        k = min(self.steps[s], int(t // self.step_s))
        return 100.0 + self.dir[s] * k

    def positions(self):
        """[(row, crosses)]"""
        out = []
        for s in self.syms:
            side = "long" if self.dir[s] < 0 else "short"
            for lvl in range(self.LEVELS):
                stop = 100.0 + self.dir[s] * (lvl + 0.5)
                out.append((dict(symbol=s, side=side, stop_loss=stop), lvl < self.steps[s]))
            far = 100.0 + self.dir[s] * 30
            tp = 100.0 - self.dir[s] * 30
            out.append((dict(symbol=s, side=side, stop_loss=far, take_profit=tp), False))
            out.append((dict(symbol=s, side=side, stop_loss=far), False))
        return out


class Producer(threading.Thread):
    """XADDs one tick per symbol every 100 ms to the stream (one pipeline).
    A batch that fails (Redis restarting) is simply not counted: the
    stream's length at the end is the truth."""

    def __init__(self, redis_port, path):
        super().__init__(daemon=True)
        self.r = E.Resp(redis_port, timeout=1.0)
        self.path = path
        self.t0 = time.monotonic()
        self.stop_ev = threading.Event()
        self.paused = threading.Event()
        self.idle = threading.Event()
        self.sent = 0
        self.errors = 0

    def run(self):
        while not self.stop_ev.is_set():
            if self.paused.is_set():
                self.idle.set()
                time.sleep(0.02)
                continue
            self.idle.clear()
            t = time.monotonic() - self.t0
            cmds = []
            ts = "%.3f" % time.time()
            for s in self.path.syms:
                p = self.path.price(s, t)
                cmds.append(("XADD", STREAM, "*", "ts", ts, "venue", "XA", "symbol", s,
                             "bid", "%.2f" % (p - 0.01), "bid_size", "100",
                             "ask", "%.2f" % (p + 0.01), "ask_size", "100"))
            try:
                reps = self.r.pipeline(cmds)
                self.sent += sum(1 for x in reps if isinstance(x, bytes))
            except OSError:
                self.errors += 1
                time.sleep(0.2)
                continue
            time.sleep(0.1)

    def pause(self, timeout=2.0):
        self.paused.set()
        self.idle.wait(timeout)

    def resume(self):
        self.paused.clear()


class Fault:
    def __init__(self, kind, target, detail, t_begin):
        self.kind, self.target, self.detail = kind, target, detail
        self.t_begin = t_begin
        self.t_end = None          # when the fault was switched off
        self.t_recovered = None
        self.old_pid = None

    @property
    def ttr(self):
        if self.t_end is None or self.t_recovered is None:
            return None
        return self.t_recovered - self.t_end

    def __str__(self):
        return "%s(%s%s)" % (self.kind, self.target or "", (" " + self.detail) if self.detail else "")


class Run:
    def __init__(self, warden, tmp_path, settings=None, log=print):
        self.s = settings or Settings()
        self.rng = random.Random(self.s.seed)
        self.log = log
        self.warden = warden
        self.path = PricePath(self.rng, self.s.symbols, self.s.duration)
        self.sys = E.System(warden, tmp_path, self.path.syms, source="redis", aof=True,
                            seed=self.s.seed % 100000,
                            supervisor={"log_ring_lines": 200},
                            agg_keys={"redis_sink": "yes", "venue_stale_after": "5s"},
                            worker_keys={w: {"breaker_failures": 50, "breaker_cooldown": "1s"}
                                         for w in E.WORKERS})
        self.reload_gen = 0
        self.faults = []
        self.current = None
        self.agg_stats = {}          # aggregator pid -> last stats seen
        self.agg_exact = True        # False when an incarnation died without drained stats
        self.inexact_why = []
        self.agg_call_fail = {}  # pid -> (first, last failure, count, last error): calls not answered
        self.brk_state = {}          # (worker, breaker) -> state
        self.brk_opens = collections.Counter()
        self.restarts0 = {}
        self.sup_crash_opens0 = {}
        self.warden_pid = None
        self.base_rss = self.base_fds = None
        self.base_fd_table = self.last_fd_table = None
        self.end_rss = self.end_fds = None
        self.producer = None
        self.crossing = set()
        self.safe = set()
        self.t_start = None
        self.last_status = None
        self.why = None
        self.settle_why = None
        self.usage = []              # (t, supervisor RSS kB, fds) every 10 s

    # ---- set-up ----
    def start(self):
        self.sys.start_services()
        rows = self.path.positions()
        ids = self.sys.seed([r for r, _ in rows])
        for i, (_r, crosses) in zip(ids, rows):
            (self.crossing if crosses else self.safe).add(i)
        self.sys.start_warden(timeout=40)
        self.warden_pid = self.warden.pid
        self.producer = Producer(self.sys.redis.port, self.path)
        self.producer.start()
        # Warm up: every path in use once (quotes, Redis sink, heartbeats)
        # before the supervisor's baseline is taken.
        time.sleep(3)
        self.wait_healthy(30, "healthy before the run")
        st = self.warden.status()
        # The supervisor keeps one connection to each worker it has called
        # (its REQ socket to worker-NAME.sock, for `wardenctl call`); the
        # run calls some of them. Call each once so the baseline holds them.
        for name, w in st.items():
            if w.get("kind") == "worker":
                self.sys.call(name, "ping", check=False, timeout=10)
        self.restarts0 = {n: w["restarts"] for n, w in st.items()}
        self.sup_crash_opens0 = {n: (w.get("breaker") or {}).get("opens", 0) for n, w in st.items()}
        self.base_rss, self.base_fds = self.sup_usage(samples=5)
        self.base_fd_table = self.last_fd_table
        self.t_start = time.monotonic()

    def sup_usage(self, samples=1):
        """(RSS kB, open fds) of the supervisor; with samples > 1, the
        least of that many readings 0.2 s apart: a wardenctl connection
        being served, or a pidfd of a restart in flight, is not held."""
        pid = self.warden_pid
        rss, fds = [], []
        for i in range(samples):
            if i:
                time.sleep(0.2)
            rss.append(rss_kb(pid))
            table = fd_table(pid)
            if not fds or len(table) < min(fds):
                self.last_fd_table = table
            fds.append(len(table))
        return min(rss), min(fds)

    # ---- probes ----
    def group_info(self):
        try:
            groups = self.sys.redis.cli("XINFO", "GROUPS", STREAM)
        except (OSError, E.Resp.Error):
            return None
        for g in groups or []:
            d = {g[i].decode(): g[i + 1] for i in range(0, len(g), 2)}
            if d.get("name") == GROUP.encode():
                return d
        return None

    def poll_status(self):
        """One status poll: the supervisor must be alive; breaker
        transitions are counted; the aggregator's stats are kept per pid."""
        if not self.warden.alive():
            raise AssertionError("the supervisor exited (%s)" % self.warden.proc.returncode)
        st = self.warden.status()
        self.last_status = st
        for name, w in st.items():
            for b in w.get("breakers") or []:
                key = (name, b["name"])
                prev = self.brk_state.get(key)
                if b["state"] == "open" and prev not in (None, "open"):
                    self.brk_opens[key] += 1
                self.brk_state[key] = b["state"]
        return st

    def poll_agg(self, st):
        a = st.get("aggregator")
        if a and a["state"] == "RUNNING" and a["ready"] and a["pid"]:
            r = self.warden.ctl("call", "aggregator", "stats", "--json", json=False, timeout=10)
            if r.rc == 0:
                self.agg_stats[a["pid"]] = json.loads(r.out)
                self.agg_call_fail.pop(a["pid"], None)
            else:
                # A call that keeps failing is a failure of its own (the
                # operator's `wardenctl call` path), not just a lost count.
                first, _last, n, _err = self.agg_call_fail.get(a["pid"], (time.monotonic(), 0, 0, ""))
                self.agg_call_fail[a["pid"]] = (first, time.monotonic(), n + 1,
                                                (r.err or r.out).strip()[:300])

    def healthy(self, st=None):
        """What "recovered" means: every program RUNNING and READY, every
        worker breaker closed, Redis, PostgreSQL, the broker and the sink
        answering, the stream consumed (lag small), no position stuck in
        closing, no alert pending delivery. The reason it is not is kept in
        self.why for the failure message."""
        self.why = self._unhealthy(st)
        return self.why is None

    def _unhealthy(self, st):
        try:
            st = st or self.poll_status()
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 - a failed probe means not healthy yet
            return "status: %s" % e
        for n, w in st.items():
            if w["state"] != "RUNNING" or not w["ready"]:
                return "%s %s ready=%s" % (n, w["state"], w["ready"])
            for b in w.get("breakers") or []:
                if (n, b["name"]) in FALLBACK_BREAKERS:
                    continue
                if b["state"] not in ("closed", "disabled"):
                    return "%s breaker %s %s" % (n, b["name"], b["state"])
        if not self.sys.redis.ping():
            return "redis down"
        if not self.sys.broker.up():
            return "broker down"
        g = self.group_info()
        if g is None or (g.get("lag") or 0) > 4 * len(self.path.syms):
            return "stream group %s" % g
        try:
            n = self.sys.redis.cli("ZCARD", E.NT_PREFIX + "pending")
            if n != 0:
                return "%d alerts pending" % n
            rows = self.sys.q("SELECT count(*) FROM positions WHERE status = 'closing'")
        except Exception as e:  # noqa: BLE001
            return "probe: %s" % e
        if int(rows[0][0]) != 0:
            return "%s positions closing" % rows[0][0]
        return None

    def wait_healthy(self, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return time.monotonic()
            time.sleep(0.2)
        raise AssertionError("not %s within %.0fs: %s" % (what, timeout, self.why))

    # ---- faults ----
    def drain_agg(self):
        """Producer paused, the stream fully acked, then this aggregator's
        stats read: its counts are final."""
        self.producer.pause()
        deadline = time.monotonic() + 5
        ok = False
        while time.monotonic() < deadline:
            g = self.group_info()
            if g is not None and g.get("lag") == 0 and g.get("pending") == 0:
                ok = True
                break
            time.sleep(0.05)
        st = self.poll_status()
        self.poll_agg(st)
        if not ok:
            self.agg_exact = False
            self.inexact_why.append("stream not drained before a fault on pid %s: %s" % (
                st["aggregator"]["pid"], self.group_info()))
        return st["aggregator"]["pid"]

    def inject(self, kind):
        rng = self.rng
        now = time.monotonic
        if kind in ("kill9", "stop", "reload"):
            target = rng.choice(E.WORKERS)
            st = self.warden.status()
            if target == "aggregator":
                pid = self.drain_agg()
            else:
                pid = st[target]["pid"]
            f = Fault(kind, target, "", now())
            f.old_pid = pid
            if kind == "kill9":
                os.kill(pid, signal.SIGKILL)
                f.t_end = now()
            elif kind == "stop":
                hold = HB_TIMEOUT_MS / 1000.0 + rng.uniform(0.5, 1.5)
                f.detail = "%.1fs" % hold
                os.kill(pid, signal.SIGSTOP)
                f.end = lambda p=pid: _cont(p)
                f.end_at = now() + hold
            else:
                self.reload_gen += 1
                keys = self.sys.worker_keys.setdefault(target, {})
                keys["environment"] = "CHAOS_GEN=%d" % self.reload_gen
                self.sys.write_config()
                out = self.warden.ctl("reload")
                assert target in out.get("restarted", []), "reload did not restart %s: %s" % (
                    target, out)
                f.t_end = now()
            return f
        if kind == "redis":
            down = rng.uniform(0.3, 2.0)
            f = Fault(kind, "redis-server", "down %.1fs" % down, now())
            self.sys.redis.stop()
            f.end = lambda: self.sys.redis.start()
            f.end_at = now() + down
            return f
        if kind == "postgres":
            down = rng.uniform(0.3, 2.0)
            f = Fault(kind, "postgresql", "down %.1fs" % down, now())
            self.sys.pg.stop()
            f.end = lambda: self.sys.pg.start()
            f.end_at = now() + down
            return f
        if kind == "broker":
            which = rng.choice(("error_rate", "rate_429", "hang_rate"))
            rate = round(rng.uniform(0.3, 1.0), 2)
            hold = rng.uniform(1.0, 5.0)
            f = Fault(kind, which, "%.2f for %.1fs" % (rate, hold), now())
            args = {which: rate}
            if which == "rate_429":
                args["retry_after_s"] = 1
            self.sys.broker.faults(**args)
            f.end = lambda: self.sys.broker.faults(error_rate=0, rate_429=0, hang_rate=0)
            f.end_at = now() + hold
            return f
        if kind == "sink":
            mode = rng.choice(("fail", "hang"))
            hold = rng.uniform(1.0, 5.0)
            f = Fault(kind, mode, "%.1fs" % hold, now())
            self.sys.sink.set(E.HOOK, mode, status=500)
            f.end = lambda: self.sys.sink.set(E.HOOK, "ok")
            f.end_at = now() + hold
            return f
        raise ValueError(kind)

    def finish_fault(self, f):
        if f.t_end is None:
            f.end()
            f.t_end = time.monotonic()

    def recovered(self, f, st):
        if f.target == "aggregator" or f.kind in ("kill9", "stop", "reload"):
            w = st[f.target]
            if w["pid"] in (None, f.old_pid):
                return False
        return self.healthy(st)

    # ---- the run ----
    def run(self):
        s = self.s
        self.log("chaos: seed %d, %.0fs of faults at %.1f/min (%s), settle <= %.0fs" % (
            s.seed, s.duration, s.rate, ",".join(s.kinds), s.settle))
        end = self.t_start + s.duration
        next_at = self.t_start + self.rng.expovariate(s.rate / 60.0)
        last_poll = 0
        last_usage = 0
        while time.monotonic() < end or (self.current and self.current.t_recovered is None):
            now = time.monotonic()
            f = self.current
            if f is not None and f.t_end is None and now >= getattr(f, "end_at", now):
                self.finish_fault(f)
            if now - last_usage >= 10:
                last_usage = now
                self.usage.append((now - self.t_start,) + self.sup_usage())
            if now - last_poll >= 0.25:
                last_poll = now
                st = self.poll_status()
                self.poll_agg(st)
                if f is not None and f.t_end is not None and f.t_recovered is None:
                    if self.recovered(f, st):
                        f.t_recovered = time.monotonic()
                        if f.target == "aggregator":
                            self.producer.resume()
                        self.log("chaos: %6.1fs %-28s recovered %.2fs after it ended" % (
                            f.t_begin - self.t_start, f, f.ttr))
                    elif int(now - f.t_end) % 10 == 0 and int(now - f.t_end) > 0 and \
                            self.why != getattr(f, "last_why", None):
                        f.last_why = self.why
                        self.log("chaos: %6.1fs %-28s waiting: %s" % (
                            now - self.t_start, f, self.why))
                    if f.t_recovered is None and now - f.t_end > 120:
                        raise AssertionError("no recovery within 120s of %s: %s" % (f, self.why))
            if now >= end:
                time.sleep(0.05)
                continue
            free = f is None or f.t_recovered is not None or (s.overlap and f.t_end is not None)
            if now >= next_at and free:
                kind = self.rng.choice(s.kinds)
                if f is not None and f.target == "aggregator" and f.t_recovered is None:
                    self.producer.resume()  # overlap: the next fault will drain again
                nf = self.inject(kind)
                self.faults.append(nf)
                self.current = nf
                next_at = now + self.rng.expovariate(s.rate / 60.0)
            time.sleep(0.05)
        self.producer.resume()

    def settle(self):
        """Faults off; wait until every crossing position is closed, nothing
        pending, the stream drained and all healthy."""
        deadline = time.monotonic() + self.s.settle
        self.sys.broker.faults(error_rate=0, rate_429=0, hang_rate=0)
        self.sys.sink.set(E.HOOK, "ok")
        # Last price steps are in; stop ticking so the stream can drain fully.
        self.producer.stop_ev.set()
        self.producer.join(5)
        while time.monotonic() < deadline:
            st = self.poll_status()
            self.poll_agg(st)
            g = self.group_info()
            ps = self.sys.positions()
            done = all(ps[i].status == "closed" for i in self.crossing)
            healthy = self.healthy(st)
            if not done:
                self.settle_why = "crossing positions not closed yet"
            elif not g or g.get("lag") != 0 or g.get("pending") != 0:
                self.settle_why = "stream not drained: %s" % g
            else:
                self.settle_why = self.why
            if self.settle_why is None:
                break
            time.sleep(0.3)
        time.sleep(1.0)  # room for a late duplicate to show
        st = self.poll_status()
        self.poll_agg(st)
        self.end_rss, self.end_fds = self.sup_usage(samples=5)

    # ---- verdict ----
    def collect(self):
        c = {}
        st = self.poll_status()
        c["status"] = st
        ps = self.sys.positions()
        c["closed"] = {i for i, p in ps.items() if p.status == "closed"}
        c["not_open"] = {i for i, p in ps.items() if p.status != "open"}
        c["positions"] = ps
        b = self.sys.broker.stats()
        c["broker"] = b
        keys = self.sys.redis.cli("KEYS", E.NT_PREFIX + "seen:*")
        c["acked"] = {k.decode()[len(E.NT_PREFIX + "seen:"):] for k in keys}
        # The monitor's outbox also sends breaker alerts; which of its ids
        # are exits is read from the log channel's lines in warden's stdout
        # (an id the log never shows is taken for an exit: the strict side).
        # An alert the log channel printed without a kind label (the
        # notifier's own repeat summaries, "<id>.rN") is not an exit either.
        kinds = {}
        for aid, rest in ALERT_LOG_RE.findall(self.warden.stdout_text()):
            m = ALERT_KIND_RE.search(rest)
            kinds[aid] = m.group(1) if m else "none"
        c["acked_exit"] = {a for a in c["acked"] if a.startswith(PM_SENDER) and
                           kinds.get(a, "exit") == "exit"}
        dlq = self.sys.redis.cli("ZRANGE", E.NT_PREFIX + "dlq", 0, -1)
        c["dlq"] = {x.decode() for x in dlq}
        c["pending_alerts"] = self.sys.redis.cli("ZCARD", E.NT_PREFIX + "pending")
        c["sink_ids"] = self.sys.sink.ids(E.HOOK)
        c["sink_hits"] = self.sys.sink.hits(E.HOOK)
        c["sink_alerts"] = self.sys.sink_alerts()
        c["group"] = self.group_info()
        c["xlen"] = self.sys.redis.cli("XLEN", STREAM)
        return c

    def check(self, c):
        """Every assertion of the issue; returns the list of failures (empty
        when the run passed)."""
        fails = []
        st = c["status"]
        if self.settle_why:
            fails.append("not settled within %.0fs: %s" % (self.s.settle, self.settle_why))
        if self.warden.pid != self.warden_pid or not self.warden.alive():
            fails.append("the supervisor exited or changed pid")
        for n, w in st.items():
            if w["state"] != "RUNNING" or not w["ready"]:
                fails.append("%s is %s ready=%s after the settle" % (n, w["state"], w["ready"]))
        # Positions: crossed ones closed exactly once, others open.
        if c["closed"] != self.crossing:
            fails.append("closed positions differ from those that crossed: missing %s, "
                         "extra %s" % (sorted(self.crossing - c["closed"]),
                                       sorted(c["closed"] - self.crossing)))
        if c["not_open"] - self.crossing:
            fails.append("positions that never crossed are not open: %s" % sorted(
                c["not_open"] - self.crossing))
        b = c["broker"]
        per = b["per_id"]
        for i in self.crossing:
            coid = "wd-pm-%d" % i
            if per.get(coid, {}).get("fills") != 1:
                fails.append("broker fills for %s: %s" % (coid, per.get(coid)))
        extra = set(per) - {"wd-pm-%d" % i for i in self.crossing}
        if extra:
            fails.append("broker orders for positions that did not cross: %s" % sorted(extra))
        if b["max_fills_per_id"] != 1 or b["orders"] != len(self.crossing):
            fails.append("broker: orders %s, max_fills_per_id %s (want %d, 1)" % (
                b["orders"], b["max_fills_per_id"], len(self.crossing)))
        # Alerts: every acked exit alert delivered or in the DLQ.
        lost = [a for a in c["acked_exit"] if c["sink_ids"][a] == 0 and a not in c["dlq"]]
        if lost:
            fails.append("acked alerts neither delivered nor in the DLQ: %s" % sorted(lost))
        if c["pending_alerts"]:
            fails.append("%d alerts still pending delivery" % c["pending_alerts"])
        unexplained = self.unexplained_duplicates(c)
        if unexplained:
            fails.append("alerts delivered twice with no notifier kill, stop or Redis fault "
                         "between the deliveries: %s" % unexplained[:5])
        unknown = set(c["sink_ids"]) - c["acked_exit"]
        if unknown:
            fails.append("the sink got alerts the notifier never acked: %s" % sorted(unknown))
        wrong = [d for _t, _i, d in c["sink_alerts"]
                 if int(d.get("labels", {}).get("position", 0)) not in self.crossing]
        if wrong:
            fails.append("exit alerts for positions that did not cross: %s" % wrong[:5])
        # Ticks: every entry acked; with exact accounting, processed once.
        g = c["group"] or {}
        if g.get("pending") != 0 or g.get("lag") != 0 or g.get("entries-read") != c["xlen"]:
            fails.append("stream %s group %s: pending %s, lag %s, entries-read %s of %s" % (
                STREAM, GROUP, g.get("pending"), g.get("lag"), g.get("entries-read"), c["xlen"]))
        for pid, (first, last, n, err) in sorted(self.agg_call_fail.items()):
            if pid not in self.agg_stats and last - first >= AGG_CALL_FAIL_S:
                fails.append("`wardenctl call aggregator stats` failed %d times over %.1fs for "
                             "pid %s (RUNNING and READY), never answered: %s" % (
                                 n, last - first, pid, err))
        tk = self.tick_counts()
        if self.agg_exact and (tk["entries"] != c["xlen"] or tk["processed"] != c["xlen"]):
            fails.append("ticks: stream holds %d, aggregators read %d and processed %d "
                         "(per pid: %s)" % (c["xlen"], tk["entries"], tk["processed"], tk["per_pid"]))
        # The supervisor's footprint.
        # RSS: with fixed malloc thresholds (supervisor/warden_main.c) a
        # short run costs the supervisor about 0.4 MB (the log rings and
        # status filling up; before, glibc's dynamic thresholds kept 3-5 MB
        # of freed heap: docs/reliability.md, finding 3), so the bound is
        # 2 MB, and on runs of 5 minutes or more the second half must be
        # flat (< 64 kB a minute).
        if self.end_rss > self.base_rss + RSS_MARGIN_KB:
            fails.append("supervisor RSS grew from %d kB to %d kB (margin %d kB)" % (
                self.base_rss, self.end_rss, RSS_MARGIN_KB))
        slope = self.rss_slope()
        if slope is not None and slope > RSS_SLOPE_KB_MIN:
            fails.append("supervisor RSS still growing in the second half of the run: "
                         "%.0f kB/min" % slope)
        # fds: 2 for what is in flight, plus what nng 1.5.2 keeps of each
        # supervisor listener the watchdog found broken and replaced (the
        # connections stuck in it; docs/reliability.md, finding 6).
        lsn = self.listener_restarts().get("warden", 0)
        fd_margin = FD_MARGIN + FD_PER_LSN_RESTART * lsn
        if self.end_fds > self.base_fds + fd_margin:
            fails.append("supervisor fds grew from %d to %d (margin %d, %d listener restarts); "
                         "changed: %s" % (self.base_fds, self.end_fds, fd_margin, lsn,
                                          fd_diff(self.base_fd_table, self.last_fd_table)))
        return fails

    # A delivery the notifier could not record: it was killed (kill9, or a
    # stop that ended in the supervisor's SIGKILL) or Redis failed the
    # route-done write. A graceful stop, restart or reload lets deliveries in
    # flight finish (docs/NOTIFIER.md, "Stopping"), so it explains nothing.
    DUP_SLACK_S = 1.0

    def duplicate_cause(self, f):
        return (f.kind in ("kill9", "stop") and f.target == "notifier") or f.kind == "redis"

    def unexplained_duplicates(self, c):
        """Alert ids the sink answered 2xx more than once with no fault that
        explains it between the first answer and the next."""
        times = collections.defaultdict(list)
        for t, aid, status in c["sink_hits"]:
            if status is not None and 200 <= status < 300:
                times[aid].append(t)
        out = []
        for aid, ts in times.items():
            for t1, t2 in zip(ts, ts[1:]):
                if not any(self.duplicate_cause(f) and f.t_begin <= t2 and
                           (f.t_recovered or f.t_end or t2) >= t1 - self.DUP_SLACK_S
                           for f in self.faults):
                    out.append("%s (%.1fs and %.1fs)" % (aid, t1 - self.t_start, t2 - self.t_start))
        return out

    def listener_restarts(self):
        """Bus listener watchdog restarts by process name ("warden" for the
        supervisor), from warden's output."""
        return collections.Counter(n or "warden" for n in
                                   LSN_RESTART_RE.findall(self.warden.stdout_text()))

    def rss_slope(self):
        """kB per minute over the second half of the run (None if < 5 min)."""
        if not self.usage or self.usage[-1][0] < 300:
            return None
        half = [u for u in self.usage if u[0] >= self.usage[-1][0] / 2]
        dt = half[-1][0] - half[0][0]
        return (half[-1][1] - half[0][1]) / dt * 60 if dt > 0 else None

    def tick_counts(self):
        entries = processed = 0
        per = {}
        for pid, s in self.agg_stats.items():
            r = s.get("redis") or {}
            e = r.get("source_entries", 0)
            p = sum((s.get("ticks_in") or {}).get("redis", {}).values())
            entries += e
            processed += p
            per[pid] = (e, p, r.get("source_acked", 0))
        return {"entries": entries, "processed": processed, "per_pid": per}

    def summary(self, c):
        lines = []
        dur = (self.faults[-1].t_begin - self.t_start) if self.faults else 0
        lines.append("chaos summary: seed %d (CHAOS_SEED=%d replays it), %.0fs of faults "
                     "configured at %.1f/min, %d injected over %.0fs" % (
                         self.s.seed, self.s.seed, self.s.duration, self.s.rate,
                         len(self.faults), dur))
        by = collections.defaultdict(list)
        for f in self.faults:
            by[f.kind].append(f)
        lines.append("  %-9s %5s  %10s  %10s  %s" % ("fault", "count", "worst TTR", "median",
                                                     "targets"))
        for k in KINDS:
            fs = by.get(k, [])
            if not fs:
                continue
            ttrs = sorted(x.ttr for x in fs if x.ttr is not None)
            tg = collections.Counter(x.target for x in fs)
            lines.append("  %-9s %5d  %9.2fs  %9.2fs  %s" % (
                k, len(fs), ttrs[-1] if ttrs else math.nan,
                ttrs[len(ttrs) // 2] if ttrs else math.nan,
                ", ".join("%s x%d" % kv for kv in sorted(tg.items()))))
        st = c["status"]
        restarts = {n: w["restarts"] - self.restarts0.get(n, 0) for n, w in st.items()}
        lines.append("  restarts: %s (total %d)" % (
            ", ".join("%s %d" % kv for kv in sorted(restarts.items())), sum(restarts.values())))
        # The bus listener watchdog's restarts (common/bus_lsn.c): each one
        # is an nng 1.5.2 listener found broken, by process name.
        lsn = self.listener_restarts()
        lines.append("  bus listener restarts (nng 1.5.2 listener bug worked around): %s" % (
            ", ".join("%s %d" % kv for kv in sorted(lsn.items())) or "none"))
        crash = {n: (w.get("breaker") or {}).get("opens", 0) - self.sup_crash_opens0.get(n, 0)
                 for n, w in st.items()}
        lines.append("  breaker openings (worker breakers, seen in heartbeats): %s; "
                     "crash-loop breakers: %d" % (
                         ", ".join("%s/%s %d" % (k[0], k[1], v) for k, v in
                                   sorted(self.brk_opens.items())) or "none",
                         sum(crash.values())))
        sink_total = sum(c["sink_ids"].values())
        dups = {a: n for a, n in c["sink_ids"].items() if n > 1}
        lines.append("  exits: %d positions crossed, %d closed, %d never crossed (all open: %s); "
                     "broker orders %d, posts %d, duplicate posts %d, max fills per id %d" % (
                         len(self.crossing), len(c["closed"]), len(self.safe),
                         not (c["not_open"] - self.crossing), c["broker"]["orders"],
                         c["broker"]["posts"], c["broker"]["duplicate_posts"],
                         c["broker"]["max_fills_per_id"]))
        lines.append("  alerts: %d exit alerts acked by the notifier, %d delivered to the sink "
                     "(%d deliveries, %d duplicates: %s, %d unexplained), %d in the DLQ, "
                     "%d pending; "
                     "%d exits whose alert never reached the notifier" % (
                         len(c["acked_exit"]), len(c["sink_ids"]), sink_total,
                         sum(n - 1 for n in dups.values()), sorted(dups.items())[:5],
                         len(self.unexplained_duplicates(c)),
                         len(c["dlq"]), c["pending_alerts"],
                         len(c["closed"]) - len(c["acked_exit"])))
        tk = self.tick_counts()
        g = c["group"] or {}
        lines.append("  ticks: %d in the stream, group entries-read %s, pending %s, lag %s; "
                     "aggregators (%d incarnations) read %d, processed %d (%s)" % (
                         c["xlen"], g.get("entries-read"), g.get("pending"), g.get("lag"),
                         len(self.agg_stats), tk["entries"], tk["processed"],
                         "exact" if self.agg_exact else "inexact: " + "; ".join(self.inexact_why)))
        lines.append("  supervisor: RSS %d -> %d kB, fds %d -> %d; every 10 s (t, kB, fds): %s" % (
            self.base_rss, self.end_rss, self.base_fds, self.end_fds,
            " ".join("%.0f:%d/%d" % u for u in self.usage)))
        return "\n".join(lines)

    def fault_log(self):
        return "\n".join("  %6.1fs %-32s ended +%.2fs recovered %s" % (
            f.t_begin - self.t_start, f, (f.t_end or f.t_begin) - f.t_begin,
            "%.2fs" % f.ttr if f.ttr is not None else "-") for f in self.faults)

    def close(self):
        if self.producer is not None:
            self.producer.stop_ev.set()
        if self.current is not None and self.current.t_end is None:
            try:
                self.finish_fault(self.current)
            except Exception:  # noqa: BLE001
                pass
        self.sys.close()


def _cont(pid):
    if pid_alive(pid):
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def dumps(obj):
    return json.dumps(obj, indent=1, sort_keys=True, default=str)
