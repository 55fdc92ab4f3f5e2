#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_sup_control: one control request per
command the supervisor knows (with the arguments it parses), plus a few it
must refuse. A tiny msgpack writer, so it needs nothing beyond python3. Run
it from the repository root after a wire format change:

    python3 tests/fuzz/make_control_seeds.py tests/fuzz/corpus
"""
import os
import struct
import sys


def pack(v):
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        return b"\xc4" + bytes([len(v)]) + v
    if isinstance(v, list):
        return bytes([0x90 | len(v)]) + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)


def request(cmd, target="", args=None, mtype=3, version=1):
    body = {"cmd": cmd}
    if target:
        body["target"] = target
    if args:
        body["args"] = args
    return pack([version, mtype, "wardenctl", 7, 1700000000000000000, body])


SEEDS = {
    "ping": request("ping"),
    "version": request("version"),
    "status": request("status"),
    "start_all": request("start", "all", {"reason": "deploy"}),
    "stop_one": request("stop", "aggregator"),
    "restart_reason": request("restart", "notifier", {"reason": "config fix"}),
    "signal_hup": request("signal", "health", {"signal": "HUP"}),
    "signal_num": request("signal", "health", {"signal": "15"}),
    "signal_bad": request("signal", "health", {"signal": "SIGNOPE"}),
    "logs_n_after": request("logs", "aggregator", {"n": "20", "after": "1234"}),
    "logs_bad_n": request("logs", "aggregator", {"n": "-1"}),
    "logs_huge_n": request("logs", "aggregator", {"n": "99999999999999999999"}),
    "events_n": request("events", "", {"n": "5"}),
    "reset_reason": request("reset", "position_monitor", {"reason": "broker back"}),
    "reload": request("reload"),
    "call_breakers": request("call", "aggregator", {"command": "breakers", "x": "1"}),
    "unknown_cmd": request("selfdestruct"),
    "wrong_type": request("status", mtype=4),
    "wrong_version": request("status", version=2),
    "target_not_name": request("stop", "../etc"),
    "cmd_not_str": pack([1, 3, "wardenctl", 1, 2, {"cmd": 5}]),
    "truncated": request("logs", "aggregator", {"n": "20"})[:-3],
}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "tests/fuzz/corpus"
    d = os.path.join(root, "fuzz_sup_control")
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
