"""The status page (GET /) in a real browser: headless Chromium (Debian
package `chromium`) loads the page served by the real warden-health under a
real warden, and the test reads the live DOM through the DevTools protocol
(a small stdlib websocket client below) while the page updates itself.

It proves: the worker's row shows RUNNING; after `kill -9` of the worker's
pid the same page, never reloaded, shows BACKOFF (or STARTING) and then
RUNNING again under a new pid; the crash-loop breaker row follows. A
screenshot of each stage is kept under the test's temp dir (paths printed;
pytest -s shows them). Skipped, with the reason, when chromium is missing."""
import base64
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from wardenlib import BIN_DIR, worker

HEALTH = BIN_DIR / "warden-health"
CHROMIUM = shutil.which("chromium")
COOLDOWN_S = 4  # the crash-loop breaker holds the worker in BACKOFF this long

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium is not installed (Debian package chromium)")


class DevTools:
    """Just enough of a websocket client (RFC 6455) for the DevTools
    protocol: one connection, text frames, commands matched by id."""

    def __init__(self, ws_url, timeout=10.0):
        assert ws_url.startswith("ws://"), ws_url
        hostport, path = ws_url[5:].split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "DevTools closed the connection during the handshake"
            head += chunk
        assert head.split(b"\r\n", 1)[0].split()[1] == b"101", head[:200]
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "DevTools closed the connection"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _frame(self):
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        mask = self._read(4) if b1 & 0x80 else None
        data = self._read(n)
        if mask:
            data = bytes(c ^ mask[i % 4] for i, c in enumerate(data))
        return b0 & 0x80, b0 & 0x0F, data

    def _message(self):
        parts = []
        while True:
            fin, op, data = self._frame()
            if op == 8:
                raise AssertionError("DevTools closed the websocket")
            if op in (9, 10):  # ping/pong: nothing to answer for a short session
                continue
            parts.append(data)
            if fin:
                return json.loads(b"".join(parts))

    def call(self, method, **params):
        self.next_id += 1
        payload = json.dumps({"id": self.next_id, "method": method, "params": params}).encode()
        head = bytes([0x81])
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", len(payload))
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", len(payload))
        mask = os.urandom(4)
        self.sock.sendall(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
        while True:
            msg = self._message()
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        self.sock.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(fn, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium with DevTools on a port of its choosing; yields a
    function that opens a URL and returns a DevTools session on its page."""
    profile = tmp_path / "chromium-profile"
    procs, sessions = [], []

    def open_page(url):
        p = subprocess.Popen([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
                              "--no-first-run", "--disable-extensions", "--mute-audio",
                              "--remote-debugging-port=0", "--user-data-dir=%s" % profile,
                              "--window-size=900,700", url],
                             stdout=subprocess.DEVNULL, stderr=open(tmp_path / "chromium.err", "wb"),
                             start_new_session=True)
        procs.append(p)
        port_file = profile / "DevToolsActivePort"
        wait(lambda: port_file.exists() and port_file.read_text().strip(), 20,
             "chromium to write DevToolsActivePort")
        port = int(port_file.read_text().split()[0])

        def page_target():
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                c.request("GET", "/json/list")
                targets = json.loads(c.getresponse().read())
            finally:
                c.close()
            return next((t for t in targets if t.get("type") == "page"
                         and t.get("url", "").startswith(url)), None)
        target = wait(page_target, 20, "chromium's page target for %s" % url)
        s = DevTools(target["webSocketDebuggerUrl"])
        sessions.append(s)
        return s

    yield open_page
    for s in sessions:
        s.close()
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(10)


# Safe before the page has loaded: missing elements read as null.
ROW_JS = """(() => {
  const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : null; };
  const s = document.getElementById('summary');
  const w = document.querySelector('#workers tr[data-worker="w"]');
  const b = document.querySelector('#breakers tr[data-worker="w"][data-breaker="crash_loop"]');
  return {state: w ? w.dataset.state : null, breaker: b ? b.dataset.state : null,
          marker: window.__wardenTestMarker || null,
          ready: s ? s.dataset.ready : null, updated: text('updated'), error: text('error')};
})()"""


def test_page_follows_kill_9(warden, browser, tmp_path):
    port = free_port()
    # A kill within min_uptime is a quick failure; one opens the crash-loop
    # breaker, which holds the worker in BACKOFF for the cooldown: long
    # enough to be seen, whatever the restart jitter.
    warden.start({
        "worker:w": worker(min_uptime="60s", breaker_failures="1",
                           breaker_cooldown="%ds" % COOLDOWN_S),
        "worker:health": worker(command=str(HEALTH), required="no"),
        "health": {"listen": "127.0.0.1:%d" % port, "snapshot_ttl": "100ms"},
    })
    page = browser("http://127.0.0.1:%d/" % port)
    dom = wait(lambda: (lambda d: d if d["state"] == "RUNNING" else None)(page.eval(ROW_JS)),
               20, "the page to show w RUNNING")
    assert dom["error"] == "" and dom["updated"] and dom["breaker"] == "closed", dom
    # The page must update itself: a reload would drop this marker.
    page.eval("window.__wardenTestMarker = 'kept'")
    shots = [page.screenshot(tmp_path / "status-1-running.png")]

    pid = warden.status("w")["pid"]
    os.kill(pid, signal.SIGKILL)
    dom = wait(lambda: (lambda d: d if d["state"] in ("BACKOFF", "STARTING") else None)(
        page.eval(ROW_JS)), 10, "the page to show w BACKOFF or STARTING after kill -9")
    assert dom["marker"] == "kept", "the page was reloaded: %r" % dom
    if dom["state"] == "BACKOFF":
        assert dom["breaker"] == "open", dom
    shots.append(page.screenshot(tmp_path / ("status-2-%s.png" % dom["state"].lower())))

    dom = wait(lambda: (lambda d: d if d["state"] == "RUNNING" else None)(page.eval(ROW_JS)),
               COOLDOWN_S + 15, "the page to show w RUNNING again")
    assert dom["marker"] == "kept" and dom["error"] == "", dom
    new = warden.status("w")
    assert new["pid"] not in (None, pid) and new["restarts"] >= 1
    shots.append(page.screenshot(tmp_path / "status-3-running-again.png"))
    for s in shots:
        assert s.stat().st_size > 1000 and s.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", s
        print("status page screenshot: %s" % s)
