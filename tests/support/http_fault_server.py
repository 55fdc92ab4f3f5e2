#!/usr/bin/python3
"""A real HTTP/1.1 server on 127.0.0.1 for the HTTP client's tests, with
routes that misbehave on purpose. Python 3 standard library only.

Usage: http_fault_server.py [--port P]

It opens three listeners and prints one line once all accept connections:
    READY http=P1 noread=P2 blackhole=P3
  http       HTTP/1.1 keep-alive server with the routes below (on --port if
             given, else any free port)
  noread     accepts TCP connections and never reads from them, so a client
             uploading a large body stalls once the socket buffers fill
  blackhole  listens with the smallest backlog and never accepts; the queue
             is filled by our own connections, so further SYNs are dropped and
             a client's connect hangs

Routes:
  /ok                 200, {"ok": true}
  /status/N[/...]     answers status N
  /429                429 with Retry-After: 2
  /retry-after-date   429 with an HTTP-date Retry-After 3 s ahead
  /hang               reads the request, never answers
  /big?bytes=N        N bytes of body ("&chunked=1": no Content-Length)
  /slow?ms=N          200 after N ms
  /echo[/...]         echoes method, path, headers and body as JSON
  /conns              TCP connections accepted so far on the http listener
  /requests           requests received so far on the http listener

It exits on SIGTERM/SIGKILL from the test, or by itself when its parent
dies (stdin is the test's pipe and reaches EOF).
"""
import email.utils
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

BIG_MAX = 256 << 20  # bytes a /big may ask for
SLOW_MAX_MS = 60000
CHUNK = 65536
STOP = threading.Event()

counters = {"conns": 0, "requests": 0}
counters_lock = threading.Lock()


def bump(name):
    with counters_lock:
        counters[name] += 1
        return counters[name]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    allow_reuse_address = True

    def get_request(self):
        conn = super().get_request()
        bump("conns")
        return conn

    def handle_error(self, request, client_address):
        # Clients that time out or abort a download reset the connection on
        # purpose; that is the test working, not a server fault.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the body
    # waits for the client's delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass  # keep the test's output clean

    def reply(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def route(self):
        bump("requests")
        url = urlsplit(self.path)
        q = parse_qs(url.query)
        body = self.read_body()
        p = url.path
        if p == "/ok":
            return self.reply(200, b'{"ok": true}')
        if p.startswith("/status/"):
            try:
                code = int(p[len("/status/"):].split("/")[0])
            except ValueError:
                code = 400
            if not 100 <= code <= 599:
                code = 400
            return self.reply(code, json.dumps({"status": code}).encode())
        if p == "/429":
            return self.reply(429, b'{"error": "slow down"}', headers=[("Retry-After", "2")])
        if p == "/retry-after-date":
            when = email.utils.formatdate(time.time() + 3, usegmt=True)
            return self.reply(429, b'{"error": "slow down"}', headers=[("Retry-After", when)])
        if p == "/hang":
            STOP.wait()
            self.close_connection = True
            return None
        if p == "/big":
            n = min(int(q.get("bytes", ["0"])[0]), BIG_MAX)
            if q.get("chunked", ["0"])[0] == "1":
                return self.send_chunked(n)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            return self.send_bytes(n)
        if p == "/slow":
            ms = min(int(q.get("ms", ["0"])[0]), SLOW_MAX_MS)
            time.sleep(ms / 1000.0)
            return self.reply(200, b'{"ok": true}')
        if p == "/echo" or p.startswith("/echo/"):
            doc = {
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
            return self.reply(200, json.dumps(doc).encode())
        if p == "/conns":
            with counters_lock:
                n = counters["conns"]
            return self.reply(200, json.dumps({"conns": n}).encode())
        if p == "/requests":
            with counters_lock:
                n = counters["requests"]
            return self.reply(200, json.dumps({"requests": n}).encode())
        return self.reply(404, b'{"error": "no such route"}')

    def send_bytes(self, n):
        block = b"x" * CHUNK
        try:
            while n > 0:
                k = min(n, CHUNK)
                self.wfile.write(block[:k])
                n -= k
        except OSError:
            self.close_connection = True  # the client gave up, as it should

    def send_chunked(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        block = b"x" * CHUNK
        try:
            while n > 0:
                k = min(n, CHUNK)
                self.wfile.write(b"%x\r\n" % k + block[:k] + b"\r\n")
                n -= k
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = route


def noread_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A small receive buffer (inherited by accepted sockets) keeps the kernel
    # from soaking up megabytes of the upload.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    held = []

    def loop():
        while not STOP.is_set():
            try:
                c, _ = s.accept()
            except OSError:
                return
            held.append(c)  # never read, never closed

    threading.Thread(target=loop, daemon=True).start()
    return s


def blackhole_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fillers = []
    # Linux queues backlog + 1 connections; a few more make sure the accept
    # queue is full, after which the kernel drops new SYNs.
    for _ in range(4):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect_ex(s.getsockname())
        fillers.append(c)
    time.sleep(0.05)
    return s, fillers


def watch_parent():
    # stdin is a pipe from the test; EOF means the test process is gone.
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os._exit(0)


def main():
    port = 0
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--port":
        port = int(args[1])
    elif args:
        sys.stderr.write("usage: http_fault_server.py [--port P]\n")
        return 2
    httpd = Server(("127.0.0.1", port), Handler)
    nr = noread_listener()
    bh, _fillers = blackhole_listener()
    threading.Thread(target=watch_parent, daemon=True).start()
    sys.stdout.write("READY http=%d noread=%d blackhole=%d\n" % (
        httpd.server_address[1], nr.getsockname()[1], bh.getsockname()[1]))
    sys.stdout.flush()
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        STOP.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
