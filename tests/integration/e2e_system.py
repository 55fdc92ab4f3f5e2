"""The whole system for the end-to-end test and the chaos run: the real
warden with every worker (aggregator, position monitor, notifier, health),
the paper broker as a [program:], a private redis-server and a private
PostgreSQL cluster (both restartable: the chaos run stops them), and a
counting webhook sink (sink.py) that receives the notifier's exit alerts.

    sysm = System(warden, tmp_path, symbols=["E1", "E2"], source="replay", replay_file=csv)
    sysm.start()                      # services, warden, every worker READY
    ids = sysm.seed([dict(symbol="E1", side="long", stop_loss=97), ...])
    sysm.positions()                  # {id: Pos} straight from PostgreSQL
    sysm.dump()                       # status, events, logs, broker/sink state (for failures)
    sysm.close()

Nothing here is mocked: every piece is the real binary or server.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pm_helpers as H
from sink import Sink
from wardenlib import BIN_DIR, FAST_PROGRAM, FAST_WORKER, SOURCE_DIR, tail

AGG = BIN_DIR / "warden-aggregator"
PM = BIN_DIR / "warden-position-monitor"
PB = BIN_DIR / "warden-paper-broker"
NOTIFIER = BIN_DIR / "warden-notifier"
HEALTH = BIN_DIR / "warden-health"
ALL_BINS = (AGG, PM, PB, NOTIFIER, HEALTH)
WORKERS = ("aggregator", "position_monitor", "notifier", "health")
HOOK = "/hook"
NT_PREFIX = "warden:notifier:"


def bins_built():
    return all(os.access(p, os.X_OK) for p in ALL_BINS)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Resp:
    """A minimal RESP2 client over one TCP connection (no Python redis
    package on Debian's python3 here): commands, pipelines, replies as
    bytes / int / list / RespError. Reconnects lazily after a failure."""

    class Error(Exception):
        pass

    def __init__(self, port, timeout=2.0):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
        self.sock = None
        self.buf = b""

    @staticmethod
    def _enc(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest
        if t == b"-":
            return Resp.Error(rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise OSError("bad RESP reply %r" % line[:40])

    def pipeline(self, cmds):
        """Sends every command, returns every reply (OSError: connection lost;
        the caller does not know which of them ran)."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            self.sock.sendall(b"".join(self._enc(c) for c in cmds))
            return [self._reply() for _ in cmds]
        except (OSError, ValueError):
            self.close()
            raise

    def call(self, *args):
        r = self.pipeline([args])[0]
        if isinstance(r, Resp.Error):
            raise r
        return r


class PrivateRedis:
    """A redis-server of our own on a fixed port and directory, so it can be
    stopped and started again with its data. With aof=True every write is
    in the append-only file before the reply (appendfsync always): a
    restart keeps the notifier's pending alerts, the tick stream and the
    consumer group's acks, as a production Redis with persistence would."""

    def __init__(self, aof=False):
        self.dir = tempfile.mkdtemp(prefix="wd-e2e-redis.", dir="/tmp")
        self.port = free_port()
        self.aof = aof
        self.proc = None
        self.url = "redis://127.0.0.1:%d" % self.port
        self.client = Resp(self.port)

    def start(self, timeout=15):
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir",
                self.dir, "--save", "", "--logfile", os.path.join(self.dir, "redis.log")]
        args += (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                 else ["--appendonly", "no"])
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start on %d\n%s" % (
            self.port, tail(os.path.join(self.dir, "redis.log"))))

    def ping(self):
        try:
            return Resp(self.port, timeout=0.5).call("PING") == b"PONG"
        except (OSError, Resp.Error):
            return False

    def stop(self, kill=False, timeout=20):
        """SIGTERM (Redis writes what it has and exits) or SIGKILL."""
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cli(self, *args):
        return self.client.call(*args)

    def close(self):
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)


class Pos(NamedTuple):
    id: int
    symbol: str
    side: str
    status: str
    reason: str
    price: str
    coid: str
    closing_at: float  # epoch seconds, 0 when never closing
    closed_at: float


class System:
    """Warden with every worker against private servers. Settings that the
    chaos run changes are kept here so it can rewrite the config for a
    reload."""

    def __init__(self, warden, tmp_path, symbols, venues=("XA",), source="replay",
                 replay_file=None, aof=False, seed=1, pm_keys=None, nt_keys=None,
                 worker_keys=None, supervisor=None, agg_keys=None):
        self.warden = warden
        self.tmp = Path(tmp_path)
        self.symbols = list(symbols)
        self.venues = list(venues)
        self.source = source
        self.replay_file = replay_file
        self.broker_seed = seed
        self.redis = PrivateRedis(aof=aof)
        self.pg = None
        self.sink = Sink()
        self.broker_port = free_port()
        self.broker = H.Broker(self.broker_port)
        self.health_port = free_port()
        self.pm_keys = pm_keys or {}
        self.nt_keys = nt_keys or {}
        self.agg_keys = agg_keys or {}
        self.worker_keys = worker_keys or {}   # {worker name: {key: value}}
        self.supervisor = supervisor or {}
        self.autostart = {}                    # {worker name: "no"}

    # -- config --
    def _worker(self, name, command, **extra):
        w = {"command": str(command)}
        w.update(FAST_WORKER)
        w["start_timeout"] = "10s"
        w.update(extra)
        w.update(self.worker_keys.get(name, {}))
        if name in self.autostart:
            w["autostart"] = self.autostart[name]
        return w

    def sections(self):
        agg = {"source": self.source, "symbols": ",".join(self.symbols),
               "venues": ",".join(self.venues), "bar_intervals": "1s",
               "redis_url": self.redis.url}
        if self.replay_file:
            agg["replay_file"] = str(self.replay_file)
            agg["replay_speed"] = "1"
        agg.update(self.agg_keys)
        pm = {"dsn": self.pg.dsn, "schema_file": SOURCE_DIR / "config" / "schema.sql",
              "redis_url": self.redis.url, "broker_url": self.broker.base,
              "price_stale_after": "2s", "broker_timeout": "2s",
              "broker_breaker_failures": 3, "broker_breaker_open": "1s",
              "broker_breaker_open_max": "2s", "retry_base": "50ms", "retry_cap": "1s",
              "broker_min_interval": "10ms", "persist_interval": "100ms",
              "db_retry_interval": "200ms"}
        pm.update(self.pm_keys)
        nt = {"redis_url": self.redis.url, "retry_base": "100ms", "retry_cap": "1s",
              "dedup_window": "1s", "storm_threshold": "0", "id_ttl": "24h",
              "max_attempts": "1000"}
        nt.update(self.nt_keys)
        return {
            "program:broker": dict(FAST_PROGRAM, command="%s --listen 127.0.0.1:%d --redis-url "
                                   "%s --seed %d" % (PB, self.broker_port, self.redis.url,
                                                     self.broker_seed)),
            "worker:aggregator": self._worker("aggregator", AGG),
            "aggregator": agg,
            "worker:position_monitor": self._worker("position_monitor", PM),
            "position_monitor": pm,
            "worker:notifier": self._worker("notifier", NOTIFIER),
            "notifier": nt,
            # Exit alerts only: supervisor events (which the chaos run makes
            # plenty of) go to the log channel.
            "channel:hook": {"type": "webhook", "url": self.sink.url(HOOK),
                             "labels": "kind=exit", "timeout": "2s", "breaker_failures": "3",
                             "breaker_cooldown": "1s"},
            "channel:log": {"type": "log"},
            "worker:health": self._worker("health", HEALTH),
            "health": {"listen": "127.0.0.1:%d" % self.health_port, "snapshot_ttl": "100ms"},
        }

    def write_config(self):
        return self.warden.write_config(self.sections(), self.supervisor)

    # -- life cycle --
    def start_services(self):
        self.redis.start()
        self.pg = H.PrivatePostgres()
        # The schema before the monitor starts, so rows can be seeded first.
        subprocess.run(["psql", self.pg.dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f",
                        str(SOURCE_DIR / "config" / "schema.sql")], check=True,
                       capture_output=True, timeout=30)
        self.sink.start()
        self.sink.set(HOOK, "ok")

    def start_warden(self, timeout=30):
        self.warden.start(self.sections(), self.supervisor, timeout=timeout)
        self.warden.wait_until(self.broker.up, 10, "the paper broker to listen")
        self.warden.wait_until(
            lambda: (self.call("position_monitor", "health", check=False) or {}).get("loaded"),
            20, "positions loaded")

    def start(self, timeout=30):
        self.start_services()
        self.start_warden(timeout)
        return self

    def close(self):
        try:
            if self.warden.alive():
                self.warden.stop(timeout=30)
        except AssertionError:
            pass
        try:
            self.sink.stop()
        except Exception:
            pass
        self.redis.close()
        if self.pg is not None:
            self.pg.close()

    # -- workers --
    def call(self, worker, *args, check=True, timeout=30):
        return self.warden.ctl("call", worker, *args, check=check, timeout=timeout)

    def pm(self, *args):
        return self.call("position_monitor", *(args or ("health",)))

    # -- positions --
    def q(self, sql):
        return H.psql(self.pg.dsn, sql)

    def seed(self, rows):
        """rows: dicts of positions columns (account, quantity and
        entry_price default to acct1, 10, 100). Returns the ids in order."""
        if not rows:
            return []
        vals = []
        for r in rows:
            r = dict({"account": "acct1", "quantity": 10, "entry_price": 100}, **r)
            cols = ["account", "symbol", "side", "quantity", "entry_price", "stop_loss",
                    "take_profit"]
            v = []
            for c in cols:
                x = r.get(c)
                v.append("NULL" if x is None else ("'%s'" % x if isinstance(x, str) else repr(x)))
            vals.append("(%s)" % ", ".join(v))
        sql = ("INSERT INTO positions (account, symbol, side, quantity, entry_price, stop_loss, "
               "take_profit) VALUES %s RETURNING id" % ", ".join(vals))
        return [int(r[0]) for r in self.q(sql)]

    def positions(self):
        rows = self.q("SELECT id, symbol, side, status, coalesce(exit_reason, ''), "
                      "coalesce(exit_price::text, ''), coalesce(client_order_id, ''), "
                      "coalesce(extract(epoch FROM closing_at), 0), "
                      "coalesce(extract(epoch FROM closed_at), 0) FROM positions ORDER BY id")
        return {int(r[0]): Pos(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], float(r[7]),
                               float(r[8])) for r in rows}

    # -- alerts --
    def sink_alerts(self):
        """Every exit alert the sink answered 2xx, in arrival order:
        (monotonic time, X-Warden-Alert-Id, body as dict)."""
        out = []
        for t, aid, status, body, headers in self.sink.requests(HOOK):
            if status is None or not 200 <= status < 300:
                continue
            try:
                doc = json.loads(body.decode())
            except ValueError:
                doc = {}
            out.append((t, headers.get("X-Warden-Alert-Id") or aid, doc))
        return out

    # -- diagnostics --
    def dump(self, workers=WORKERS + ("broker",), log_lines=60):
        parts = [self.warden.diag()]
        try:
            st = self.warden.status_full()
            parts.append("status:\n" + json.dumps(st, indent=1, sort_keys=True)[:20000])
        except Exception as e:  # noqa: BLE001 - diagnostics must not raise
            parts.append("status failed: %s" % e)
        try:
            evs = self.warden.events(100)
            parts.append("events:\n" + "\n".join(
                "%s %s %s %s->%s %s" % (e.get("ts"), e.get("kind"), e.get("worker"),
                                        e.get("from"), e.get("to"), e.get("reason"))
                for e in evs))
        except Exception as e:  # noqa: BLE001
            parts.append("events failed: %s" % e)
        for w in workers:
            try:
                lines = self.warden.logs(w, log_lines)
                parts.append("--- logs %s ---\n%s" % (w, "\n".join(
                    "%s %s" % (l.get("pid"), l.get("line")) for l in lines)))
            except Exception as e:  # noqa: BLE001
                parts.append("logs %s failed: %s" % (w, e))
        try:
            st = self.broker.stats()
            st.pop("per_id", None)
            parts.append("broker stats: %s" % json.dumps(st)[:4000])
        except Exception as e:  # noqa: BLE001
            parts.append("broker stats failed: %s" % e)
        parts.append("sink hits: %s" % [(round(t, 2), i, s) for t, i, s in
                                        self.sink.hits(HOOK)][-60:])
        return "\n".join(parts)
