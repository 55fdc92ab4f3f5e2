"""A worker (run by warden as [worker:NAME]) that behaves well under its own
name but also pushes heartbeats naming another worker (argv[1]), to check
that warden rejects a heartbeat whose sender name and pid do not match.

It speaks the wire protocol itself (sp.py): READY once, then every 100 ms a
heartbeat as itself and one in the victim's name."""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import msgpack  # noqa: E402

import sp  # noqa: E402


def env(mtype, sender, body, seq):
    return msgpack.packb([1, mtype, sender, seq, time.time_ns(), body], use_bin_type=True)


def main():
    victim = sys.argv[1]
    me = os.environ["WARDEN_NAME"]
    url = os.environ["WARDEN_HEARTBEAT_URL"]
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    s = sp.SPSocket(url, sp.PROTO_PUSH)
    seq = 1
    s.send_raw(env(2, me, {"pid": os.getpid(), "version": "imposter"}, seq))
    print("imposter %s pushing heartbeats as %s" % (me, victim), flush=True)
    while True:
        seq += 1
        hb = {"pid": os.getpid(), "progress": seq, "loop_lag_us": 0, "breakers": {}, "metrics": {}}
        s.send_raw(env(1, me, hb, seq))
        s.send_raw(env(1, victim, hb, seq))
        time.sleep(0.1)


if __name__ == "__main__":
    main()
