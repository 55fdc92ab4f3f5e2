"""The set-up every supervised child gets, read back from /proc of the real
process: its own session and process group, no_new_privs, rlimits, user and
group with no supplementary groups, directory, umask and a clean environment.
Then the same set-up through `warden exec`, and its bad arguments."""
import os
import pwd
import grp
import re
import subprocess
import time

from wardenlib import WARDEN, clean_env, program

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup")


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_limits(pid):
    """{"Max open files": ("77", "77"), ...}: soft and hard."""
    out = {}
    with open("/proc/%d/limits" % pid) as f:
        next(f)
        for line in f:
            name = line[:26].strip()
            parts = line[26:].split()
            out[name] = (parts[0], parts[1])
    return out


def proc_stat(pid):
    """(pgrp, session) from /proc/PID/stat; comm may hold spaces."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[2]), int(rest[3])


def proc_environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        items = [e for e in f.read().split(b"\0") if e]
    return dict(e.decode().split("=", 1) for e in items)


def test_program_gets_session_limits_ids_directory_and_clean_env(warden, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    warden.start({"program:p": program(
        "/bin/sleep 1000", user="nobody", group="nogroup", directory=str(workdir),
        limit_memory="256M", limit_nofile="77", limit_core="1M",
        environment='GREETING="two words" MODE=paper')},
        env={"LEAKED_SECRET": "hunter2", "HOME": "/root", "LANG": "C.UTF-8"})
    pid = warden.status("p")["pid"]
    assert pid and pid != warden.pid

    # Its own session and process group: signals to warden's group miss it,
    # and stopping it can signal the whole group it started.
    pgrp, sid = proc_stat(pid)
    assert (pgrp, sid) == (pid, pid)
    assert os.getsid(warden.pid) != sid

    st = proc_status(pid)
    assert st["NoNewPrivs"] == "1", st
    assert st["Uid"].split() == [str(NOBODY.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(NOGROUP.gr_gid)] * 4, st["Gid"]
    assert st["Groups"] == "", st["Groups"]  # root's supplementary groups dropped
    assert st["Umask"] == "0022", st["Umask"]
    assert int(st["PPid"]) == warden.pid

    lim = proc_limits(pid)
    assert lim["Max address space"] == (str(256 << 20),) * 2, lim["Max address space"]
    assert lim["Max open files"] == ("77", "77"), lim["Max open files"]
    assert lim["Max core file size"] == (str(1 << 20),) * 2, lim["Max core file size"]

    assert os.readlink("/proc/%d/cwd" % pid) == str(workdir)

    env = proc_environ(pid)
    assert "LEAKED_SECRET" not in env, sorted(env)
    assert env["GREETING"] == "two words" and env["MODE"] == "paper"
    assert env["WARDEN_NAME"] == "p" and env["WARDEN_RUN_DIR"] == str(warden.run_dir)
    assert env["HOME"] == "/root" and env["LANG"] == "C.UTF-8"
    assert env["PATH"] == os.environ["PATH"]  # kept, like HOME and LANG
    # A program is not wired to the bus: only workers get the sockets.
    assert "WARDEN_HEARTBEAT_URL" not in env and "WARDEN_COMMAND_URL" not in env
    warden.stop()


def test_unknown_user_is_a_failed_start_named_in_status_not_a_crash(warden):
    warden.start({"program:p": program("/bin/sleep 1000", user="no-such-user-wd"),
                  "program:q": program("/bin/sleep 1000")}, wait_running=False)
    w = warden.wait_for(lambda st: st["p"]["last_exit"] == "spawn failed", 10,
                        "p's start to fail")["p"]
    assert w["pid"] in (None, 0), w
    assert w["state"] != "RUNNING", w
    assert "no-such-user-wd" in warden.stderr_path.read_text(), "the log names the unknown user"
    # The supervisor and the other program are unaffected.
    assert warden.wait_for(lambda st: st["q"]["state"] == "RUNNING", 10, "q RUNNING")
    assert warden.ctl("ping", json=False).rc == 0
    warden.stop()


def run_exec(args, timeout=10):
    return subprocess.run([str(WARDEN), "exec", *args], capture_output=True, timeout=timeout,
                          env=clean_env({"LANG": "C"}))


def test_warden_exec_applies_the_setup_then_becomes_the_program(tmp_path):
    script = ("echo pid=$$; cat /proc/self/limits; grep -E '^(NoNewPrivs|Uid|Umask):' "
              "/proc/self/status; cut -d' ' -f5,6 /proc/self/stat; pwd")
    p = subprocess.Popen([str(WARDEN), "exec", "--limit-nofile", "64", "--limit-memory", "512M",
                          "--limit-core", "0", "--no-new-privs", "--setsid", "--umask", "077",
                          "--user", "nobody", "--directory", str(tmp_path), "--",
                          "/bin/sh", "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    out = out.decode()
    # Chain-loading: the program runs in warden exec's own process.
    assert "pid=%d\n" % p.pid in out, out
    lines = out.splitlines()
    limit = {l[:26].strip(): l[26:].split()[:2] for l in lines if l.startswith("Max ")}
    assert limit["Max open files"] == ["64", "64"], out
    assert limit["Max address space"] == [str(512 << 20)] * 2, out
    assert limit["Max core file size"] == ["0", "0"], out
    assert "NoNewPrivs:\t1" in out and "Umask:\t0077" in out, out
    assert any(l.startswith("Uid:") and l.split()[1:] == [str(NOBODY.pw_uid)] * 4
               for l in lines), out
    assert "%d %d" % (p.pid, p.pid) in lines, out  # setsid: own group and session
    assert lines[-1] == str(tmp_path), out


def test_warden_exec_passes_exit_status_through(tmp_path):
    r = run_exec(["--limit-nofile", "32", "--", "/bin/sh", "-c", "exit 7"])
    assert r.returncode == 7, r


def test_warden_exec_bad_arguments_named(tmp_path):
    cases = [
        (["--limit-nofile", "lots", "--", "/bin/true"], 2, "bad value 'lots' for --limit-nofile"),
        (["--limit-memory", "64X", "--", "/bin/true"], 2, "bad value '64X' for --limit-memory"),
        (["--umask", "999", "--", "/bin/true"], 2, "bad value '999' for --umask"),
        (["--frobnicate", "--", "/bin/true"], 2, "unknown option '--frobnicate'"),
        (["--limit-nofile"], 2, "--limit-nofile needs a value"),
        (["--limit-nofile", "8"], 2, "missing '-- PROGRAM'"),
        (["--"], 2, "missing '-- PROGRAM'"),
        (["--user", "no-such-user-wd", "--", "/bin/true"], 2, "no-such-user-wd"),
        (["--", "no-such-program-wd"], 127, "no-such-program-wd: not found"),
        (["--directory", str(tmp_path / "missing"), "--", "/bin/true"], 1, "chdir"),
    ]
    for args, rc, text in cases:
        r = run_exec(args)
        err = r.stderr.decode()
        assert r.returncode == rc, (args, r.returncode, err)
        assert text in err, (args, err)
        assert len(err.splitlines()) == 1, (args, err)
        assert r.stdout == b"", (args, r.stdout)


def test_limit_nofile_above_what_may_be_granted_is_said_not_silent(warden):
    # Above fs.nr_open: no one may grant it. The program gets the most it
    # may have, and warden says so, through `warden exec` and in its log.
    want = 100_000_000
    r = run_exec(["--limit-nofile", str(want), "--", "/bin/sh", "-c", "ulimit -n"])
    err = r.stderr.decode()
    m = re.search(r"--limit-nofile %d is more than may be granted; using (\d+)" % want, err)
    assert r.returncode == 0 and m, err
    assert r.stdout.decode().strip() == m.group(1)
    # The config's own bound is 1048576; whether that is more than may be
    # granted depends on the machine (CAP_SYS_RESOURCE, fs.nr_open).
    top = 1048576
    r = run_exec(["--limit-nofile", str(top), "--", "/bin/sh", "-c", "ulimit -n"])
    granted = int(r.stdout.decode())
    warden.start({"program:p": program("/bin/sleep 1000", limit_nofile=str(top))})
    pid = warden.status("p")["pid"]
    assert proc_limits(pid)["Max open files"] == (str(granted),) * 2
    warning = "p: limit_nofile %d is more than warden may grant; the program gets %d" % (top, granted)
    assert (warning in warden.stderr_path.read_text()) == (granted < top)
    warden.stop()
