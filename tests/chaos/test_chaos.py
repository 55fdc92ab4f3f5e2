"""The chaos run of issue 8 (see chaos.py for what it does). In the suite:
a short run (CHAOS_DURATION, default 100 s of faults at CHAOS_RATE = 20 a
minute). A long one: CHAOS_DURATION=1800 scripts/chaos, or
`scripts/chaos --long`. CHAOS_SEED replays a run's schedule.

On failure the message holds the failures, the summary, every fault with
its time-to-recovery, and a dump of warden's status, events and each
worker's last log lines; with CHAOS_GDB=1, the supervisor's thread
backtraces (gdb) as well."""
import os
import subprocess
import time

import pytest

import chaos
import e2e_system as E

pytestmark = [
    pytest.mark.skipif(not E.bins_built(), reason="workers not built"),
    pytest.mark.skipif(os.environ.get("CHAOS_SKIP") == "1", reason="CHAOS_SKIP=1"),
]


def test_chaos(warden, tmp_path):
    settings = chaos.Settings()
    out = []

    def log(msg):
        out.append(msg)
        print(msg, flush=True)

    run = chaos.Run(warden, tmp_path, settings, log=log)
    t0 = time.monotonic()
    try:
        run.start()
        run.run()
        run.settle()
        c = run.collect()
        fails = run.check(c)
        summary = run.summary(c)
        log(summary)
        log("faults:\n" + run.fault_log())
        log("chaos: %.0fs in all" % (time.monotonic() - t0))
        report = os.environ.get("CHAOS_REPORT")
        if report:
            with open(report, "w") as f:
                f.write("\n".join(out) + "\n")
        if fails and os.environ.get("CHAOS_GDB") == "1":
            # Where the supervisor's threads are (nng's reaper among them).
            r = subprocess.run(["gdb", "-p", str(warden.pid), "-batch", "-ex",
                                "thread apply all bt"], capture_output=True, text=True,
                               timeout=120)
            log("==== gdb: warden's threads ====\n" + r.stdout[-20000:])
        if fails:
            raise AssertionError("chaos run failed (seed %d):\n - %s\n%s\nfaults:\n%s\n\n==== "
                                 "system dump ====\n%s" % (settings.seed, "\n - ".join(fails),
                                                           summary, run.fault_log(),
                                                           run.sys.dump()))
    except AssertionError:
        raise
    except Exception as e:
        raise AssertionError("chaos run broke (seed %d): %r\nfaults:\n%s\n\n==== system dump "
                             "====\n%s" % (settings.seed, e, run.fault_log(), run.sys.dump()))
    finally:
        run.close()
