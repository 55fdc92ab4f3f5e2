"""A real HTTP sink for the notifier's tests (Python stdlib only): an HTTP/1.1
keep-alive server on 127.0.0.1 that records every POST it gets and answers
as told, per path.

    sink = Sink(); sink.start()
    sink.set("/hook", "ok")                      # 200 "ok"
    sink.set("/hook", "fail", status=500, times=3)  # 500 three times, then ok
    sink.set("/hook", "status", status=404)      # always 404
    sink.set("/hook", "429", retry_after=2, times=1)
    sink.set("/hook", "hang")                    # never answers (until set again)
    sink.set("/hook", "slow", delay=1.5)         # 200 "ok" after 1.5 s
    sink.ids("/hook") -> Counter of alert ids delivered with a 2xx answer
    sink.hits("/hook") -> every request: (monotonic time, id, answered status)

Run as a script (python3 sink.py PORT) it serves "ok" on every path until
killed, for manual runs of the demo.
"""
import collections
import http.server
import json
import socket
import sys
import threading
import time


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def do_POST(self):
        sink = self.server.sink
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        aid = self.headers.get("X-Warden-Alert-Id") or ""
        ids = []
        try:
            doc = json.loads(body.decode() or "null")
            if isinstance(doc, dict) and doc.get("digest"):
                ids = [a.get("id", "") for a in doc.get("alerts", [])]
            elif isinstance(doc, dict) and "id" in doc:
                ids = [doc["id"]]
            elif isinstance(doc, dict) and "attachments" in doc:
                ids = [aid]
        except ValueError:
            pass
        if not ids:
            ids = [aid]
        path = self.path
        status, headers, hang, delay = sink._answer(path)
        sink._arrived(path, ids)
        if delay:
            time.sleep(delay)
        if hang:
            sink._record(path, ids, None, body, self.headers)
            hang.wait(60)
            self.close_connection = True
            return
        sink._record(path, ids, status, body, self.headers)
        text = b"ok" if status < 300 else b"error"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


class Sink:
    def __init__(self):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.srv.daemon_threads = True
        self.srv.sink = self
        self.port = self.srv.server_address[1]
        self.lock = threading.Lock()
        self.modes = {}
        self.log = collections.defaultdict(list)
        self.hang_events = []
        self.arrivals = collections.defaultdict(list)
        self.thread = None

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def start(self):
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        for ev in self.hang_events:
            ev.set()
        self.srv.shutdown()
        self.srv.server_close()

    def set(self, path, mode, status=200, times=None, retry_after=None, delay=None):
        with self.lock:
            for ev in self.hang_events:
                ev.set()
            self.hang_events = []
            self.modes[path] = {"mode": mode, "status": status, "times": times,
                                "retry_after": retry_after, "delay": delay}

    def _answer(self, path):
        with self.lock:
            m = self.modes.get(path, {"mode": "ok"})
            mode = m["mode"]
            if m.get("times") is not None:
                if m["times"] <= 0:
                    mode = "ok"
                else:
                    m["times"] -= 1
            if mode == "ok":
                return 200, {}, None, None
            if mode == "slow":
                return 200, {}, None, m["delay"]
            if mode == "hang":
                ev = threading.Event()
                self.hang_events.append(ev)
                return None, {}, ev, None
            if mode == "429":
                h = {"Retry-After": str(m["retry_after"])} if m["retry_after"] is not None else {}
                return 429, h, None, None
            return m["status"], {}, None, None

    def _arrived(self, path, ids):
        with self.lock:
            for i in ids:
                self.arrivals[path].append(i)

    def arrived(self, path):
        """Counter of alert ids by requests received, answered or not."""
        with self.lock:
            return collections.Counter(self.arrivals[path])

    def _record(self, path, ids, status, body, headers):
        with self.lock:
            for i in ids:
                self.log[path].append((time.monotonic(), i, status, body, dict(headers)))

    def hits(self, path):
        with self.lock:
            return [(t, i, s) for (t, i, s, _, _) in self.log[path]]

    def requests(self, path):
        with self.lock:
            return list(self.log[path])

    def ids(self, path):
        with self.lock:
            return collections.Counter(i for (_, i, s, _, _) in self.log[path]
                                       if s is not None and 200 <= s < 300)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    s = Sink()
    if len(sys.argv) > 1:
        s.srv.server_close()
        s.srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler)
        s.srv.sink = s
    print("sink on 127.0.0.1:%d" % s.srv.server_address[1], flush=True)
    s.srv.serve_forever()
