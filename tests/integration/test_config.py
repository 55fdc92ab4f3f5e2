"""Bad configs: `warden check-config FILE` and `warden -c FILE` both exit 2
and name file:line and the problem; a good config passes. Each case is its
own test so a failure names the broken check."""
import subprocess

import pytest

from wardenlib import WARDEN, clean_env, pids_with_env

GOOD = """\
[supervisor]
run_dir = {run}
log_level = info

[worker:a]
command = /bin/true
heartbeat_interval = 100ms
"""

# Each case: (config text, words the message must contain). The wrong line
# is marked with "<<<" (removed before writing); for a cycle, any of its
# depends_on lines may be named, so all are marked.
CASES = {
    "unknown_key": ("""\
[supervisor]
run_dir = {run}

[worker:a]
command = /bin/true
bogus_key = 1 <<<
""", ["unknown key", "bogus_key"]),
    "bad_duration": ("""\
[supervisor]
run_dir = {run}

[worker:a]
command = /bin/true
heartbeat_timeout = 5s
heartbeat_interval = 10parsecs <<<
""", ["heartbeat_interval", "10parsecs"]),
    "missing_command": ("""\
[supervisor]
run_dir = {run}

[worker:a]
command = /bin/true

[worker:b] <<<
restart = always
heartbeat_interval = 1s
""", ["missing", "command"]),
    "dependency_cycle": ("""\
[supervisor]
run_dir = {run}

[worker:a]
command = /bin/true
depends_on = c <<<

[worker:b]
command = /bin/true
depends_on = a <<<

[worker:c]
command = /bin/true
depends_on = b <<<
""", ["cycle"]),
    "unknown_dependency": ("""\
[supervisor]
run_dir = {run}

[worker:a]
command = /bin/true

[worker:b]
command = /bin/true
depends_on = a, ghost <<<
""", ["ghost"]),
}


def write_case(tmp_path, name):
    text, words = CASES[name]
    run = tmp_path / "run"
    lines = text.format(run=run).splitlines()
    bad = [i + 1 for i, l in enumerate(lines) if l.endswith("<<<")]
    assert bad
    lines = [l[:-3].rstrip() if l.endswith("<<<") else l for l in lines]
    path = tmp_path / ("%s.conf" % name)
    path.write_text("\n".join(lines) + "\n")
    return path, bad, words, run


def run(argv, timeout=10):
    r = subprocess.run(argv, capture_output=True, timeout=timeout, env=clean_env(),
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def check_message(err, path, lines, words):
    hits = [l for l in err.splitlines() if any(l.startswith("%s:%d:" % (path, n)) for n in lines)]
    assert hits, "no '%s:%s: ...' line in:\n%s" % (path, lines, err)
    for w in words:
        assert any(w in h for h in hits), "'%s' not in %s" % (w, hits)


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_config_rejects(tmp_path, case):
    path, lines, words, _ = write_case(tmp_path, case)
    rc, out, err = run([str(WARDEN), "check-config", str(path)])
    assert rc == 2, (rc, out, err)
    check_message(err, path, lines, words)
    # One problem, one error: nothing else is blamed.
    assert len([l for l in err.splitlines() if l.startswith(str(path) + ":")]) == 1, err


@pytest.mark.parametrize("case", sorted(CASES))
def test_warden_refuses_to_start(tmp_path, case):
    path, lines, words, run_dir = write_case(tmp_path, case)
    rc, out, err = run([str(WARDEN), "-c", str(path)])
    assert rc == 2, (rc, out, err)
    check_message(err, path, lines, words)
    # It did not start anything: no sockets, no children.
    assert not (run_dir / "control.sock").exists()
    assert pids_with_env(b"WARDEN_RUN_DIR=" + str(run_dir).encode()) == []


def test_good_config_passes(tmp_path):
    path = tmp_path / "good.conf"
    path.write_text(GOOD.format(run=tmp_path / "run"))
    rc, out, err = run([str(WARDEN), "check-config", str(path)])
    assert rc == 0, (rc, out, err)
    assert "ok" in out


def test_several_errors_all_reported(tmp_path):
    # Every bad line gets its own error, not only the first.
    text = "\n".join([CASES["unknown_key"][0], "[worker:z]", "command = /bin/true",
                      "stop_timeout = soon <<<", ""]).format(run=tmp_path / "run")
    lines = text.splitlines()
    marked = [i + 1 for i, l in enumerate(lines) if l.endswith("<<<")]
    path = tmp_path / "multi.conf"
    path.write_text("\n".join(l[:-3].rstrip() if l.endswith("<<<") else l for l in lines) + "\n")
    rc, out, err = run([str(WARDEN), "check-config", str(path)])
    assert rc == 2
    for line in marked:
        assert "%s:%d:" % (path, line) in err, (line, err)


def test_missing_file_and_usage(tmp_path):
    rc, out, err = run([str(WARDEN), "check-config", str(tmp_path / "nope.conf")])
    assert rc == 2 and "nope.conf" in err
    rc, out, err = run([str(WARDEN), "check-config"])
    assert rc == 2
    rc, out, err = run([str(WARDEN), "--no-such-flag"])
    assert rc == 2 and "no-such-flag" in err
