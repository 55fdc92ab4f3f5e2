"""[breaker:NAME] settings and WARDEN_BREAKER_<NAME>_<KEY> overrides reach a
real worker's breaker: the testworker registers breaker "db" (built in: opens
on one failure) and the operator's settings replace its own."""
from wardenlib import worker


def breaker(warden, name):
    rep = warden.ctl("call", "w", "breakers")
    items = rep["breakers"] if isinstance(rep, dict) and "breakers" in rep else rep
    return next(b for b in items if b["name"] == name)


def fail(warden, n):
    for _ in range(n):
        warden.ctl("call", "w", "fail", "breaker=db", "reason=test")


def test_section_replaces_built_in_settings(warden):
    warden.start({"worker:w": worker("--breaker", "db"),
                  "breaker:db": {"failure_threshold": "3", "critical": "yes"}})
    fail(warden, 2)
    assert breaker(warden, "db")["state"] == "closed"  # built in, it would be open
    fail(warden, 1)
    b = breaker(warden, "db")
    assert b["state"] == "open" and b["critical"] is True, b


def test_environment_override_beats_the_file(warden):
    warden.start({"worker:w": worker("--breaker", "db"),
                  "breaker:db": {"failure_threshold": "3"}},
                 env={"WARDEN_BREAKER_DB_FAILURE_THRESHOLD": "2"})
    fail(warden, 1)
    assert breaker(warden, "db")["state"] == "closed"
    fail(warden, 1)
    assert breaker(warden, "db")["state"] == "open"


def test_unconfigured_breaker_keeps_the_workers_settings(warden):
    warden.start({"worker:w": worker("--breaker", "db")})
    fail(warden, 1)
    assert breaker(warden, "db")["state"] == "open"
