"""Helpers of test_position_monitor.py: a market data publisher speaking
nng's SP PUB over ipc:// (the aggregator's side of marketdata.sock, see
proto/PROTOCOL.md "Market data"), a private database on the suite's
PostgreSQL, the paper broker's HTTP API, and private PostgreSQL / Redis
servers for the tests that stop them."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import msgpack

T_MD_BATCH = 16
PG_BIN = "/usr/lib/postgresql/15/bin"


class Publisher:
    """Binds a Unix socket and serves SP PUB (0x20) to every SUB that dials."""

    def __init__(self, path):
        self.path = str(path)
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.path)
        self.srv.listen(8)
        self.peers = []
        self.lock = threading.Lock()
        self.seq = 0
        self.stop = False
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()

    def _accept(self):
        self.srv.settimeout(0.2)
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except (socket.timeout, OSError):
                continue
            try:
                c.settimeout(2)
                c.sendall(b"\x00SP\x00" + struct.pack(">HH", 0x20, 0))
                hdr = b""
                while len(hdr) < 8:
                    chunk = c.recv(8 - len(hdr))
                    if not chunk:
                        raise OSError("closed")
                    hdr += chunk
                with self.lock:
                    self.peers.append(c)
            except OSError:
                c.close()

    def wait_subscriber(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.peers:
                    return
            time.sleep(0.05)
        raise AssertionError("no subscriber on %s" % self.path)

    def quotes(self, quotes):
        """quotes: [(symbol, bid, ask)], sent as one batch with topic "*"."""
        now = time.time_ns()
        body = [[[s, float(b), 100.0, "XNAS", float(a), 100.0, "XNAS", (b + a) / 2.0,
                  float(a - b), 0, 1, now, now] for s, b, a in quotes], []]
        self.seq += 1
        msg = msgpack.packb("*") + msgpack.packb([1, T_MD_BATCH, "pytest", self.seq, now, body])
        frame = b"\x01" + struct.pack(">Q", len(msg)) + msg
        with self.lock:
            alive = []
            for c in self.peers:
                try:
                    c.sendall(frame)
                    alive.append(c)
                except OSError:
                    c.close()
            self.peers = alive

    def close(self):
        self.stop = True
        with self.lock:
            for c in self.peers:
                c.close()
            self.peers = []
        self.srv.close()


def psql(dsn, sql, *args):
    """Runs sql (with -v variables none) and returns rows as lists of strings."""
    out = subprocess.run(["psql", dsn, "-X", "-q", "-A", "-t", "-F", "\t", "-v",
                          "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True,
                         timeout=30)
    if out.returncode != 0:
        raise AssertionError("psql failed: %s" % out.stderr)
    return [line.split("\t") for line in out.stdout.splitlines() if line]


class Database:
    """A private database on the suite's server, dropped at close."""

    def __init__(self, base_dsn):
        self.base = base_dsn
        self.name = "pm_" + uuid.uuid4().hex[:12]
        admin = self._with_db("postgres")
        psql(admin, "CREATE DATABASE %s" % self.name)
        self.dsn = self._with_db(self.name)

    def _with_db(self, db):
        parts = [p for p in self.base.split() if not p.startswith("dbname=")]
        return " ".join(parts + ["dbname=%s" % db])

    def q(self, sql):
        return psql(self.dsn, sql)

    def close(self):
        try:
            psql(self._with_db("postgres"), "DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)
        except AssertionError:
            pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """The paper broker's HTTP API."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port

    def call(self, method, path, body=None, timeout=5):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stats(self):
        return self.call("GET", "/stats")[1]

    def faults(self, **f):
        st, body = self.call("POST", "/faults", f)
        assert st == 200, body
        return body

    def up(self):
        try:
            return self.call("GET", "/healthz", timeout=1)[0] == 200
        except OSError:
            return False


class PrivatePostgres:
    """A PostgreSQL cluster of our own (as the postgres user when root), for
    tests that stop and restart it (never the suite's shared server)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warden-pm-pg.", dir="/var/tmp")
        self.port = free_port()
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        if os.getuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(self.run_as + [PG_BIN + "/initdb", "-D", self.dir + "/data", "-U",
                                      "warden", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        self.start()
        subprocess.run(self.run_as + [PG_BIN + "/createdb", "-h", "127.0.0.1", "-p",
                                      str(self.port), "-U", "warden", "warden"],
                       check=True, capture_output=True, timeout=30)
        self.dsn = "host=127.0.0.1 port=%d user=warden dbname=warden" % self.port

    def ctl(self, *args):
        subprocess.run(self.run_as + [PG_BIN + "/pg_ctl", "-D", self.dir + "/data", "-w",
                                      "-t", "60", *args], check=True, capture_output=True,
                       timeout=90)

    def start(self):
        self.ctl("-l", self.dir + "/pg.log", "-o",
                 "-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off" % (self.port, self.dir),
                 "start")

    def stop(self):
        self.ctl("-m", "fast", "stop")

    def close(self):
        try:
            self.stop()
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="warden-pm-redis.")
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port",
                                      str(self.port), "--dir", self.dir, "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.url = "redis://127.0.0.1:%d" % self.port
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError("private redis did not start")

    def cli(self, *args):
        return redis_cli(self.port, *args)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *map(str, args)], capture_output=True,
                         text=True, timeout=10)
    return out.stdout.strip()


def set_last(port, symbol, bid, ask):
    """What the aggregator's sink writes: md:last:SYMBOL with a fresh recv_ns."""
    now = time.time_ns()
    redis_cli(port, "HSET", "md:last:" + symbol, "bid", bid, "ask", ask, "mid",
              (bid + ask) / 2.0, "recv_ns", now, "ts_ns", now)
