"""Bad bytes on warden's sockets: malformed, truncated, wrong-type and
oversized messages on the control socket get an error reply (or, over the
4 MiB receive limit, a dropped connection) and warden keeps serving; on the
heartbeat socket they are counted and dropped. Heartbeats in another
worker's name are rejected and cannot keep a stopped worker alive."""
import os
import signal
import subprocess
import threading
import time

import msgpack

import sp
from wardenlib import (HB_TIMEOUT_MS, MARGIN_S, PROTO_MSG_MAX, PYTHON, STOP_TIMEOUT_MS, T_CTL_REQUEST,
                       T_EVENT, T_HEARTBEAT, T_READY, HERE, ctl_request_msg, decode_reply, envelope,
                       heartbeat_msg, pid_alive, ready_msg, worker)

HB_TIMEOUT_S = HB_TIMEOUT_MS / 1000.0
STOP_TIMEOUT_S = STOP_TIMEOUT_MS / 1000.0


def bad_control_requests():
    good = ctl_request_msg("status")
    return {
        "garbage": b"\xc1\xff\x00 not msgpack at all",
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not_an_array": msgpack.packb({"cmd": "ping"}),
        "short_envelope": msgpack.packb([1, T_CTL_REQUEST, "x"]),
        "bad_version": envelope(T_CTL_REQUEST, "x", {"cmd": "ping", "target": "", "args": {}},
                                version=99),
        "wrong_type_heartbeat": heartbeat_msg("a", 1),
        "wrong_type_event": envelope(T_EVENT, "x", {"kind": "state", "worker": "a", "from": "",
                                                    "to": "", "reason": ""}),
        "cmd_not_a_string": envelope(T_CTL_REQUEST, "x", {"cmd": 42, "target": "", "args": {}}),
        "args_not_a_map": envelope(T_CTL_REQUEST, "x", {"cmd": "ping", "target": "", "args": [1, 2]}),
        "arg_value_not_a_string": envelope(T_CTL_REQUEST, "x", {"cmd": "stop", "target": "a",
                                                                "args": {"reason": 7}}),
        "body_not_a_map": envelope(T_CTL_REQUEST, "x", ["ping", "", {}]),
        "cmd_too_long": envelope(T_CTL_REQUEST, "x", {"cmd": "p" * 5000, "target": "", "args": {}}),
        "too_many_args": envelope(T_CTL_REQUEST, "x", {"cmd": "ping", "target": "",
                                                       "args": {"k%d" % i: "v" for i in range(100)}}),
        "trailing_bytes": good + b"\x00\x01",
        "sender_empty": envelope(T_CTL_REQUEST, "", {"cmd": "ping", "target": "", "args": {}}),
        "nested_bomb": msgpack.packb([1, T_CTL_REQUEST, "x", 1, 1, {"cmd": "ping", "target": "",
                                                                  "args": {"k": [[[[[[[[]]]]]]]]}}]),
        "str_length_lies": b"\x96\x01\x03\xa1x\x01\x01\x83\xa3cmd\xdb\xff\xff\xff\xf0ping",
    }


def nngcat_req(url, payload, tmp_path, timeout=3):
    f = tmp_path / "req.bin"
    f.write_bytes(payload)
    r = subprocess.run(["nngcat", "--req0", "--dial", url, "--file", str(f), "--raw",
                        "--recv-timeout", str(timeout)], capture_output=True, timeout=timeout + 10)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def nngcat_push(url, payload, tmp_path):
    f = tmp_path / "push.bin"
    f.write_bytes(payload)
    r = subprocess.run(["nngcat", "--push0", "--dial", url, "--file", str(f)],
                       capture_output=True, timeout=15)
    assert r.returncode == 0, r.stderr


def assert_serving(warden, pids):
    assert warden.ctl("ping", json=False).rc == 0
    st = warden.status()
    for n, pid in pids.items():
        assert st[n]["state"] == "RUNNING" and st[n]["pid"] == pid and st[n]["restarts"] == 0, st[n]


def test_control_socket_bad_requests_get_error_replies(warden, tmp_path):
    warden.start({"worker:a": worker(), "worker:b": worker()})
    pids = {n: w["pid"] for n, w in warden.status().items()}
    errors0 = warden.sup()["ctl_errors"]
    cases = bad_control_requests()
    for name, payload in cases.items():
        rc, out, err = nngcat_req(warden.control_url, payload, tmp_path)
        assert out, "%s: no reply (nngcat rc %d: %s)\n%s" % (name, rc, err, warden.diag())
        body = decode_reply(out)
        assert body["status"] < 0, (name, body)
        assert body["error"], (name, body)
        assert body["data"] in ("", None), (name, body)
        assert warden.alive(), "%s killed warden\n%s" % (name, warden.diag())
    # A malformed request is named as such.
    rc, out, err = nngcat_req(warden.control_url, cases["garbage"], tmp_path)
    assert "bad request" in decode_reply(out)["error"]
    assert warden.sup()["ctl_errors"] >= errors0 + len(cases)
    # A well-formed request for an unknown command is an error too, not a crash.
    rc, out, err = nngcat_req(warden.control_url, ctl_request_msg("selfdestruct"), tmp_path)
    body = decode_reply(out)
    assert body["status"] < 0 and "selfdestruct" in body["error"]
    # And a good one over the same path works.
    rc, out, err = nngcat_req(warden.control_url, ctl_request_msg("ping"), tmp_path)
    assert decode_reply(out)["status"] == 0
    assert_serving(warden, pids)
    warden.stop()


def test_control_socket_oversized_request(warden):
    warden.start({"worker:a": worker()})
    pids = {n: w["pid"] for n, w in warden.status().items()}
    big = ctl_request_msg("ping", args={"pad": "x" * (PROTO_MSG_MAX + 1024)})
    assert len(big) > PROTO_MSG_MAX
    with sp.SPSocket(warden.control_url, sp.PROTO_REQ) as s:
        try:
            reply = s.request(big, timeout=3)
        except (sp.SPClosed, ConnectionError, BrokenPipeError):
            reply = None  # nng's receive limit: the pipe is dropped
        except OSError as e:
            if "no data" not in str(e) and "timed out" not in str(e):
                raise
            reply = None
    if reply is not None:  # if a reply comes at all, it must be an error
        body = decode_reply(reply)
        assert body["status"] < 0, body
    # Just under the limit, with a bad body: an error reply.
    near = envelope(T_CTL_REQUEST, "x", {"cmd": "ping", "target": "", "args": {"pad": "y" * (PROTO_MSG_MAX - 4096)}})
    assert len(near) < PROTO_MSG_MAX
    with sp.SPSocket(warden.control_url, sp.PROTO_REQ) as s:
        body = decode_reply(s.request(near, timeout=5))
        assert body["status"] < 0, body
    assert_serving(warden, pids)
    # A second oversized one, and still serving.
    with sp.SPSocket(warden.control_url, sp.PROTO_REQ) as s:
        try:
            s.request(big, timeout=2)
        except (OSError, sp.SPError):
            pass
    assert_serving(warden, pids)
    warden.stop()


def test_heartbeat_socket_bad_messages_counted_and_dropped(warden, tmp_path):
    warden.start({"worker:a": worker(), "worker:b": worker()})
    st = warden.status()
    pids = {n: w["pid"] for n, w in st.items()}
    rejected0 = warden.sup()["hb_rejected"]
    hb = heartbeat_msg("a", pids["a"])
    bad = {
        "garbage": b"\xc1\xc1\xc1 garbage",
        "truncated": hb[: len(hb) - 7],
        "not_an_array": msgpack.packb("hello"),
        "bad_version": envelope(T_HEARTBEAT, "a", {"pid": pids["a"]}, version=7),
        "unknown_type": envelope(99, "a", {}),
        "ctl_request_on_hb": ctl_request_msg("stop", "a"),
        "unknown_sender": heartbeat_msg("nobody-by-this-name", 1),
        "body_wrong_types": envelope(T_HEARTBEAT, "a", {"pid": "x", "progress": -1,
                                                        "breakers": 3, "metrics": "m"}),
        "ready_bad_body": envelope(T_READY, "a", [1, 2, 3]),
    }
    for name, payload in bad.items():
        nngcat_push(warden.heartbeat_url, payload, tmp_path)
    warden.wait_until(lambda: warden.sup()["hb_rejected"] >= rejected0 + len(bad), MARGIN_S,
                      "hb_rejected to grow by %d" % len(bad))
    # Oversized: dropped by the transport (over NNG_OPT_RECVMAXSZ), harmless.
    try:
        sp.push(warden.heartbeat_url, [heartbeat_msg("a", pids["a"]) + b"\x00" * (PROTO_MSG_MAX + 10)])
    except (OSError, sp.SPError):
        pass
    # Workers are untouched and still heartbeating.
    time.sleep(HB_TIMEOUT_S + 0.3)
    assert_serving(warden, pids)
    st = warden.status()
    for n in pids:
        assert st[n]["heartbeat_age_s"] < HB_TIMEOUT_S, st[n]
    assert "heartbeat rejected" in warden.stderr_text()
    warden.stop()


class FakeHeartbeats(threading.Thread):
    """Pushes valid heartbeats (and READYs) naming `victim`, claiming its pid,
    from this process every 50 ms until stopped."""

    def __init__(self, url, victim, pid):
        super().__init__(daemon=True)
        self.url, self.victim, self.pid = url, victim, pid
        self.stop_ev = threading.Event()
        self.sent = 0
        self.error = None

    def run(self):
        try:
            with sp.SPSocket(self.url, sp.PROTO_PUSH) as s:
                seq = 0
                while not self.stop_ev.is_set():
                    seq += 1
                    s.send_raw(heartbeat_msg(self.victim, self.pid, progress=10**6 + seq, seq=seq))
                    if seq % 10 == 0:
                        s.send_raw(ready_msg(self.victim, self.pid, seq=seq))
                    self.sent += 1
                    self.stop_ev.wait(0.05)
        except Exception as e:  # reported by the test
            self.error = e

    def stop(self):
        self.stop_ev.set()
        self.join(5)


def test_foreign_heartbeats_rejected_and_stopped_worker_still_restarted(warden):
    imposter = "%s %s a" % (PYTHON, HERE / "imposter.py")
    warden.start({"worker:a": worker(), "worker:imp": worker(command=imposter),
                  "worker:b": worker()})
    st = warden.status()
    a_pid = st["a"]["pid"]
    # imp is a real worker and is RUNNING on its own heartbeats, but what it
    # pushes in a's name is rejected (another worker's pid)...
    assert st["imp"]["state"] == "RUNNING" and st["imp"]["ready"]
    st = warden.wait_for(lambda s: s["a"]["hb_rejected"] >= 10, MARGIN_S,
                         "a's hb_rejected to grow from the imposter worker")
    assert st["imp"]["hb_rejected"] == 0
    # ...and so is what this test process pushes in b's name, claiming b's
    # pid in the body (the transport's peer pid is ours).
    fake_b = FakeHeartbeats(warden.heartbeat_url, "b", st["b"]["pid"])
    fake_b.start()
    try:
        warden.wait_for(lambda s: s["b"]["hb_rejected"] >= 15, MARGIN_S,
                        "b's hb_rejected to grow from the test's fakes")
    finally:
        fake_b.stop()
    assert fake_b.error is None, fake_b.error
    st = warden.status()
    assert st["b"]["progress"] < 10**6 and st["b"]["state"] == "RUNNING"
    assert warden.sup()["hb_rejected"] >= st["a"]["hb_rejected"] + st["b"]["hb_rejected"]
    # Now both the imposter and this process push in a's name.
    fake = FakeHeartbeats(warden.heartbeat_url, "a", a_pid)
    fake.start()
    try:
        assert warden.status("a")["progress"] < 10**6  # no fake progress accepted
        # Stop a for real while the fakes keep coming: it must still be
        # declared UNRESPONSIVE and replaced.
        sent_at_stop = fake.sent
        os.kill(a_pid, signal.SIGSTOP)
        try:
            new = warden.wait_new_pid("a", a_pid, HB_TIMEOUT_S + STOP_TIMEOUT_S + MARGIN_S)
        finally:
            if pid_alive(a_pid):
                os.kill(a_pid, signal.SIGCONT)
        assert new["restarts"] == 1
        tos = [e["to"] for e in warden.transitions("a")]
        assert "UNRESPONSIVE" in tos, tos
        assert fake.error is None, fake.error
        # The fakes kept coming all the while (one per 50 ms).
        assert fake.sent - sent_at_stop >= HB_TIMEOUT_S / 0.05 / 2, (sent_at_stop, fake.sent)
    finally:
        fake.stop()
    st = warden.status()
    assert st["imp"]["state"] == "RUNNING" and st["imp"]["restarts"] == 0, st["imp"]
    assert st["b"]["restarts"] == 0
    warden.stop()
