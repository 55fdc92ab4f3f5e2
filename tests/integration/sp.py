"""A minimal client of nng's SP protocols over ipc://, for tests that need to
put exact bytes on warden's sockets from this process (or from a helper
process started by warden).

nng's ipc transport is a Unix stream socket. Each side first sends an 8-byte
header: 0x00 'S' 'P' 0x00, its protocol number (16 bits, big endian) and two
zero bytes. Every message is then one byte 0x01, its length (64 bits, big
endian) and the payload. A REQ message starts with a 4-byte request id whose
top bit is set; the REP side echoes it in front of the reply body.

Only what the tests need: PUSH (heartbeats and READY), REQ (control
requests), SUB (events). No reconnection, no multiplexing.
"""
import os
import select
import socket
import struct
import time

PROTO_PUSH = 0x50
PROTO_PULL = 0x51
PROTO_REQ = 0x30
PROTO_REP = 0x31
PROTO_PUB = 0x20
PROTO_SUB = 0x21

PEER = {PROTO_PUSH: PROTO_PULL, PROTO_REQ: PROTO_REP, PROTO_SUB: PROTO_PUB}


class SPError(Exception):
    pass


class SPClosed(SPError):
    """The peer closed the connection (for example after an oversized message)."""


def _path(url):
    if url.startswith("ipc://"):
        return url[len("ipc://"):]
    return url


class SPSocket:
    def __init__(self, url, proto, timeout=5.0):
        self.proto = proto
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(_path(url))
        self.sock.sendall(b"\x00SP\x00" + struct.pack(">HH", proto, 0))
        hdr = self._recv_exact(8, timeout)
        if hdr[:4] != b"\x00SP\x00":
            raise SPError("bad SP header from peer: %r" % hdr)
        (peer,) = struct.unpack(">H", hdr[4:6])
        if peer != PEER[proto]:
            raise SPError("peer speaks protocol 0x%x, expected 0x%x" % (peer, PEER[proto]))
        self.next_id = (os.getpid() << 8) & 0x7FFFFFFF

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n, timeout):
        buf = b""
        deadline = time.monotonic() + timeout
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no data within %.1fs" % timeout)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise SPClosed("connection closed by peer")
            buf += chunk
        return buf

    def send_raw(self, payload):
        """Sends one SP message whose body is exactly payload."""
        self.sock.sendall(b"\x01" + struct.pack(">Q", len(payload)) + payload)

    def recv_raw(self, timeout=5.0):
        hdr = self._recv_exact(9, timeout)
        if hdr[0] != 1:
            raise SPError("unexpected message type byte %d" % hdr[0])
        (n,) = struct.unpack(">Q", hdr[1:])
        return self._recv_exact(n, timeout)

    # REQ
    def request(self, body, timeout=5.0):
        """Sends body as a request and returns the reply body (without its id)."""
        self.next_id = (self.next_id + 1) & 0x7FFFFFFF
        rid = struct.pack(">I", 0x80000000 | self.next_id)
        self.send_raw(rid + body)
        while True:
            msg = self.recv_raw(timeout)
            if msg[:4] == rid:
                return msg[4:]


def push(url, payloads, timeout=5.0):
    """Connects a PUSH socket, sends every payload, and waits until the peer
    has read them (the send buffer drained) before closing."""
    with SPSocket(url, PROTO_PUSH, timeout) as s:
        for p in payloads:
            s.send_raw(p)
        # A clean close after sendall: the kernel delivers what was written.
        s.sock.shutdown(socket.SHUT_WR)
        # Wait for the peer to close or a short grace, so the data is read
        # before we report back (the supervisor reads on its loop).
        try:
            s.sock.settimeout(0.5)
            s.sock.recv(1)
        except (socket.timeout, OSError):
            pass
