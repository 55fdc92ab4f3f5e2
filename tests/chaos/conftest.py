"""Fixtures of the chaos run: the integration tests' helpers (wardenlib,
e2e_system) are imported from tests/integration."""
import os
import sys

import pytest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import wardenlib  # noqa: E402


@pytest.fixture
def warden(tmp_path):
    w = wardenlib.Warden(tmp_path, "warden")
    yield w
    w.cleanup()
