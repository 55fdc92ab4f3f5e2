"""Fixtures for warden's integration tests.

    def test_x(warden):                  # one supervisor, not yet started
        warden.start({"worker:a": worker("--print", "hi")})
        st = warden.status()             # {name: W} as in docs/CONTROL.md
        warden.wait_for(lambda st: st["a"]["state"] == "RUNNING", 5)
        warden.stop()                    # SIGTERM; asserts exit 0

    def test_y(warden_factory):          # several supervisors in one test
        w1, w2 = warden_factory("one"), warden_factory("two")

Whatever a test does, teardown kills warden, every process it spawned (found
by pid from status and by WARDEN_RUN_DIR in /proc/PID/environ, killed with
their process groups) and any helper the test registered.
"""
import os
import sys

import pytest

sys.dont_write_bytecode = True  # keep the source tree clean

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wardenlib  # noqa: E402


def pytest_configure(config):
    missing = [p for p in (wardenlib.WARDEN, wardenlib.WARDENCTL, wardenlib.TESTWORKER)
               if not os.access(p, os.X_OK)]
    if missing:
        raise pytest.UsageError("binaries not built (WARDEN_BIN_DIR=%s): %s" % (
            wardenlib.BIN_DIR, ", ".join(map(str, missing))))


@pytest.fixture
def warden_factory(tmp_path):
    made = []

    def make(label="warden"):
        w = wardenlib.Warden(tmp_path, label)
        made.append(w)
        return w

    yield make
    for w in made:
        w.cleanup()


@pytest.fixture
def warden(warden_factory):
    return warden_factory()
