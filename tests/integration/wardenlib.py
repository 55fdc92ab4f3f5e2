"""Helpers for warden's integration tests: where the binaries are, config
building, a handle on one running supervisor (Warden), wire-format builders,
and /proc probes. conftest.py turns these into fixtures.

Everything here drives real processes: the warden binary, wardenctl and
warden-testworker from WARDEN_BIN_DIR. Nothing is mocked.
"""
import json as jsonlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import msgpack

SOURCE_DIR = Path(os.environ.get("WARDEN_SOURCE_DIR") or Path(__file__).resolve().parents[2])
BIN_DIR = Path(os.environ.get("WARDEN_BIN_DIR") or SOURCE_DIR / "build" / "bin")
WARDEN = BIN_DIR / "warden"
WARDENCTL = BIN_DIR / "wardenctl"
TESTWORKER = BIN_DIR / "warden-testworker"
PYTHON = "/usr/bin/python3"
HERE = Path(__file__).resolve().parent

POLL_S = 0.05

# Short timings for tests; every assertion on time adds a margin on top.
HB_INTERVAL_MS = 100
HB_TIMEOUT_MS = 1000
STOP_TIMEOUT_MS = 1000
START_TIMEOUT_MS = 5000
MIN_UPTIME_MS = 1000
MARGIN_S = 3.0  # slack for a shared 2-core machine

FAST_WORKER = {
    "heartbeat_interval": "%dms" % HB_INTERVAL_MS,
    "heartbeat_timeout": "%dms" % HB_TIMEOUT_MS,
    "stop_timeout": "%dms" % STOP_TIMEOUT_MS,
    "start_timeout": "%dms" % START_TIMEOUT_MS,
    "min_uptime": "%dms" % MIN_UPTIME_MS,
    "backoff_base": "50ms",
    "backoff_cap": "500ms",
}
FAST_PROGRAM = {
    "stop_timeout": "%dms" % STOP_TIMEOUT_MS,
    "min_uptime": "%dms" % MIN_UPTIME_MS,
    "backoff_base": "50ms",
    "backoff_cap": "500ms",
}

# proto/proto.h
PROTO_VERSION = 1
T_HEARTBEAT, T_READY, T_CTL_REQUEST, T_CTL_REPLY, T_EVENT = 1, 2, 3, 4, 5
PROTO_MSG_MAX = 4 * 1024 * 1024
# common/wd_error.h
WD_EINVAL, WD_EPROTO, WD_ETOOBIG, WD_ENOTFOUND, WD_EPERM = -1, -4, -5, -6, -10


def project_version():
    text = (SOURCE_DIR / "CMakeLists.txt").read_text()
    m = re.search(r"project\(warden\s+VERSION\s+([0-9.]+)", text)
    assert m, "no project(warden VERSION ...) in CMakeLists.txt"
    return m.group(1)


# ---- config ----

def tw(*args):
    """A warden-testworker command line for a config's `command =`."""
    return " ".join(shlex.quote(str(a)) for a in (TESTWORKER, *args))


def worker(*tw_args, **keys):
    """A [worker:NAME] section running warden-testworker with tw_args, fast
    timings, and any key overridden by keys (command= replaces the testworker)."""
    sec = {"command": tw(*tw_args)}
    sec.update(FAST_WORKER)
    sec.update(keys)
    return sec


def program(command, **keys):
    """A [program:NAME] section."""
    sec = {"command": command}
    sec.update(FAST_PROGRAM)
    sec.update(keys)
    return sec


def render_config(run_dir, sections, supervisor=None, log_level="info"):
    """Config text: [supervisor] with run_dir and log_level (plus supervisor
    keys), then each section in order. sections maps "worker:a" /
    "program:b" (or any section name) to a dict of keys, or to raw text."""
    lines = ["[supervisor]", "run_dir = %s" % run_dir, "log_level = %s" % log_level]
    for k, v in (supervisor or {}).items():
        lines.append("%s = %s" % (k, v))
    for name, body in sections.items():
        lines.append("")
        lines.append("[%s]" % name)
        if isinstance(body, str):
            lines.append(body)
        else:
            for k, v in body.items():
                lines.append("%s = %s" % (k, v))
    return "\n".join(lines) + "\n"


def clean_env(extra=None):
    """The environment for warden and wardenctl: ours minus every WARDEN_*
    variable (they would override the config) plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env.update(extra or {})
    return env


# ---- wire format (proto/proto.h) ----

def envelope(mtype, sender, body, version=PROTO_VERSION, seq=1, ts_ns=None):
    if ts_ns is None:
        ts_ns = time.time_ns()
    return msgpack.packb([version, mtype, sender, seq, ts_ns, body], use_bin_type=True)


def heartbeat_msg(sender, pid, progress=0, seq=1):
    body = {"pid": pid, "progress": progress, "loop_lag_us": 0, "breakers": {}, "metrics": {}}
    return envelope(T_HEARTBEAT, sender, body, seq=seq)


def ready_msg(sender, pid, seq=1):
    return envelope(T_READY, sender, {"pid": pid, "version": "0.0.0"}, seq=seq)


def ctl_request_msg(cmd, target="", args=None, seq=1):
    return envelope(T_CTL_REQUEST, "pytest", {"cmd": cmd, "target": target, "args": args or {}},
                    seq=seq)


def decode_reply(raw):
    """A CTL_REPLY's envelope and body, checked for shape."""
    env = msgpack.unpackb(raw, raw=False)
    assert isinstance(env, list) and len(env) == 6, "reply is not a 6-element envelope: %r" % env
    assert env[0] == PROTO_VERSION and env[1] == T_CTL_REPLY, "not a CTL_REPLY: %r" % env[:3]
    body = env[5]
    assert isinstance(body, dict) and {"status", "error", "data"} <= set(body), body
    return body


# ---- /proc ----

def proc_state(pid):
    """The state letter of pid from /proc, or None when there is no such
    process. A zombie ('Z') has exited; only its parent has not reaped it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2]


def pid_alive(pid):
    st = proc_state(pid)
    return st is not None and st not in ("Z", "X")


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def pids_with_env(needle):
    """Live pids whose environment contains needle (bytes)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0") and pid_alive(int(d)):
            out.append(int(d))
    return out


class CtlResult(NamedTuple):
    rc: int
    out: str
    err: str


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no file)"
    lines = data.splitlines()[-n:]
    return "\n".join(line if len(line) < 400 else line[:400] + "...(cut)" for line in lines)


def summarize_status(st):
    if not isinstance(st, dict):
        return repr(st)
    rows = []
    for name, w in st.items():
        brk = w.get("breaker") or {}
        rows.append("  %-12s %-12s pid=%-7s ready=%-5s restarts=%-3s breaker=%s/%s last_exit=%s "
                    "reason=%r" % (name, w.get("state"), w.get("pid"), w.get("ready"),
                                   w.get("restarts"), brk.get("state"), brk.get("opens"),
                                   w.get("last_exit"), w.get("reason")))
    return "\n".join(rows) or "  (no workers)"


class Warden:
    """One supervisor under test: its config file, run_dir, output files and
    process. Use start(sections), then ctl()/status()/wait_for(); the fixture
    calls cleanup() at teardown whatever happened."""

    def __init__(self, base_dir, label="warden"):
        self.dir = Path(base_dir) / label
        self.dir.mkdir(parents=True, exist_ok=True)
        # run_dir is short and outside pytest's 0700 tree: socket paths stay
        # well under sun_path's 108 bytes and another uid can be let in.
        self.run_dir = Path(tempfile.mkdtemp(prefix="wd-it-", dir="/tmp"))
        os.chmod(self.run_dir, 0o700)
        self.run_dir = self.run_dir / "run"  # warden creates it itself
        self.config = self.dir / "warden.conf"
        self.stdout_path = self.dir / "warden.out"
        self.stderr_path = self.dir / "warden.err"
        self.proc = None
        self.seen_pids = set()
        self.helpers = []  # Popen objects of helper processes to kill at cleanup
        self.last_status = None
        self.stdout_pipe = False

    # -- paths --
    @property
    def control_sock(self):
        return self.run_dir / "control.sock"

    @property
    def heartbeat_url(self):
        return "ipc://%s/heartbeat.sock" % self.run_dir

    @property
    def control_url(self):
        return "ipc://%s/control.sock" % self.run_dir

    @property
    def events_url(self):
        return "ipc://%s/events.sock" % self.run_dir

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    # -- config --
    def write_config(self, sections, supervisor=None, log_level="info", path=None):
        text = render_config(self.run_dir, sections, supervisor, log_level)
        path = Path(path) if path else self.config
        path.write_text(text)
        return path

    def write_raw_config(self, text, path=None):
        path = Path(path) if path else self.config
        path.write_text(text)
        return path

    # -- lifecycle --
    def start(self, sections=None, supervisor=None, log_level="info", wait_running=True,
              timeout=15.0, stdout_pipe=False, env=None):
        """Writes the config (unless sections is None: the file is used as
        is), starts warden, waits until it answers ping and, with
        wait_running, until every autostart program is RUNNING and ready."""
        if sections is not None:
            self.write_config(sections, supervisor, log_level)
        assert self.proc is None, "already started"
        self.stdout_pipe = stdout_pipe
        out = subprocess.PIPE if stdout_pipe else open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([str(WARDEN), "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, env=clean_env(env),
                                     start_new_session=True)
        if not stdout_pipe:
            out.close()
        err.close()
        self.wait_until(self._answers_ping, timeout, "warden to answer ping")
        if wait_running:
            self.wait_all_running(timeout)
        return self

    def _answers_ping(self):
        if self.proc.poll() is not None:
            raise AssertionError("warden exited with %s during start-up\n%s" %
                                 (self.proc.returncode, self.diag()))
        if not self.control_sock.exists():
            return False
        return self.ctl("ping", json=False, timeout=5).rc == 0

    def wait_all_running(self, timeout=15.0):
        def ok(st):
            return all(w["state"] == "RUNNING" and w["ready"] for w in st.values()
                       if w["desired"] == "up")
        return self.wait_for(ok, timeout, "every program RUNNING and ready")

    def stop(self, timeout=20.0, expect_rc=0):
        """SIGTERM, then asserts warden exits with expect_rc within timeout."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("warden did not exit within %.1fs of SIGTERM\n%s" %
                                 (timeout, self.diag()))
        assert rc == expect_rc, "warden exited %s after SIGTERM, expected %s\n%s" % (
            rc, expect_rc, self.diag())
        return rc

    def kill(self):
        """SIGKILL to warden alone (not its group) and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def spawn_helper(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.helpers.append(p)
        return p

    def cleanup(self):
        """Kills warden, every process it spawned and our helpers. Safe to
        call more than once and after any failure."""
        for h in self.helpers:
            if h.poll() is None:
                h.kill()
            try:
                h.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.kill()
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            if self.proc.stdout:
                self.proc.stdout.close()
        needle = b"WARDEN_RUN_DIR=" + str(self.run_dir).encode()
        deadline = time.monotonic() + 10
        while True:
            ours = set(pids_with_env(needle))
            # Pids seen in status count only while they still carry our run
            # dir: a pid number may have been reused by now.
            left = [p for p in (self.seen_pids | ours) if p in ours]
            if not left or time.monotonic() > deadline:
                break
            for p in left:
                for kill in (lambda: os.killpg(p, signal.SIGKILL), lambda: os.kill(p, signal.SIGKILL)):
                    try:
                        kill()
                    except (ProcessLookupError, PermissionError):
                        pass
            time.sleep(POLL_S)
        shutil.rmtree(self.run_dir.parent, ignore_errors=True)

    # -- wardenctl --
    def ctl(self, *args, json=True, timeout=30, check=True, socket=None, user=None, ctl_timeout_ms=None):
        """Runs wardenctl -s <run>/control.sock ARGS. With json=True, adds
        --json and returns the parsed output (asserting exit 0 when check);
        otherwise returns CtlResult(rc, out, err)."""
        argv = [str(WARDENCTL), "-s", str(socket or self.control_sock)]
        if ctl_timeout_ms is not None:
            argv += ["-t", str(ctl_timeout_ms)]
        argv += [str(a) for a in args]
        if json:
            argv.append("--json")
        if user:
            argv = ["runuser", "-u", user, "--"] + argv
        try:
            r = subprocess.run(argv, capture_output=True, timeout=timeout, env=clean_env(),
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError("wardenctl %s did not finish within %ss\n%s" %
                                 (" ".join(map(str, args)), timeout, self.diag()))
        res = CtlResult(r.returncode, r.stdout.decode("utf-8", "replace"),
                        r.stderr.decode("utf-8", "replace"))
        if not json:
            return res
        if res.rc != 0:
            if check:
                raise AssertionError("wardenctl %s exited %d: %s\n%s" % (
                    " ".join(map(str, args)), res.rc, res.err.strip(), self.diag(status=False)))
            return None
        try:
            return jsonlib.loads(res.out)
        except ValueError as e:
            raise AssertionError("wardenctl %s --json printed invalid JSON (%s): %r" % (
                " ".join(map(str, args)), e, res.out[:2000]))

    def status_full(self):
        data = self.ctl("status")
        for w in data["workers"]:
            if w.get("pid"):
                self.seen_pids.add(w["pid"])
        self.last_status = {w["name"]: w for w in data["workers"]}
        return data

    def status(self, name=None):
        """Workers by name (or the one named)."""
        st = {w["name"]: w for w in self.status_full()["workers"]}
        return st[name] if name else st

    def sup(self):
        return self.status_full()["supervisor"]

    def events(self, n=512):
        return self.ctl("events", "-n", n)["events"]

    def logs(self, name, n=100):
        return self.ctl("logs", name, "-n", n)["lines"]

    def transitions(self, name, events=None):
        """State events of one worker, oldest first."""
        evs = events if events is not None else self.events()
        return [e for e in evs if e["kind"] == "state" and e["worker"] == name]

    # -- waiting --
    def diag(self, status=True):
        parts = []
        if status and self.last_status is not None:
            parts.append("last status:\n" + summarize_status(self.last_status))
        if self.proc is not None:
            parts.append("warden pid %s, %s" % (
                self.proc.pid, "running" if self.proc.poll() is None
                else "exited %s" % self.proc.returncode))
        if not self.stdout_pipe:
            parts.append("--- tail of warden stdout ---\n" + tail(self.stdout_path, 25))
        parts.append("--- tail of warden stderr ---\n" + tail(self.stderr_path, 40))
        return "\n".join(parts)

    def wait_for(self, predicate, timeout, what=None):
        """Polls status every 50 ms until predicate(status_by_name) is true;
        returns that status. Fails with the last status and warden's output."""
        deadline = time.monotonic() + timeout
        last_err = None
        while True:
            try:
                st = self.status()
                if predicate(st):
                    return st
                last_err = None
            except (AssertionError, KeyError, TypeError) as e:
                last_err = e
            if time.monotonic() >= deadline:
                break
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(POLL_S)
        raise AssertionError("timed out after %.1fs waiting for %s%s\n%s" % (
            timeout, what or getattr(predicate, "__name__", "condition"),
            "\nlast error: %s" % last_err if last_err else "", self.diag()))

    def wait_until(self, fn, timeout, what=None):
        """Polls fn() every 50 ms until it returns something truthy, which is
        returned. Fails with warden's output."""
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() >= deadline:
                raise AssertionError("timed out after %.1fs waiting for %s\n%s" % (
                    timeout, what or getattr(fn, "__name__", "condition"), self.diag()))
            time.sleep(POLL_S)

    def wait_state(self, name, state, timeout, **fields):
        """Waits until worker name is in state and each given field equals
        its value (e.g. ready=True)."""
        def ok(st):
            w = st.get(name)
            return w is not None and w["state"] == state and all(
                w.get(k) == v for k, v in fields.items())
        return self.wait_for(ok, timeout, "%s to be %s %s" % (name, state, fields or ""))[name]

    def wait_new_pid(self, name, old_pid, timeout):
        """Waits until name is RUNNING and ready under a pid other than old_pid."""
        def ok(st):
            w = st.get(name)
            return (w is not None and w["state"] == "RUNNING" and w["ready"]
                    and w["pid"] not in (None, old_pid))
        return self.wait_for(ok, timeout, "%s RUNNING and ready with a pid other than %s" %
                             (name, old_pid))[name]

    # -- output --
    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace")

    def stdout_text(self):
        return self.stdout_path.read_text(errors="replace")


def wait_pids_gone(pids, timeout):
    """Waits until none of pids is alive; returns the time it took, or raises
    with the survivors."""
    t0 = time.monotonic()
    while True:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise AssertionError("still alive after %.2fs: %s" % (
                timeout, ", ".join("%d (%s)" % (p, proc_state(p)) for p in alive)))
        time.sleep(0.02)


STATE_LOG_RE = re.compile(r'msg="([\w.-]+): ([A-Z]+) -> ([A-Z]+)')


def logged_transitions(stderr_text):
    """(worker, from, to) for every state change warden logged, in order."""
    return [m.groups() for m in STATE_LOG_RE.finditer(stderr_text)]
